/** Looking at a filesystem media store from a test. */
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";

/**
 * The filesystem store's temp files under `root` (writes not finished:
 * `.<name>~<16 hex digits>.tmp`), as paths; none when `root` does not exist.
 */
export function storeTempFiles(root: string): string[] {
  if (!existsSync(root)) return [];
  return readdirSync(root, { recursive: true })
    .map(String)
    .filter((f) => /~[0-9a-f]{16}\.tmp$/.test(f))
    .map((f) => join(root, f));
}
