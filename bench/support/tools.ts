/**
 * The external programs the benchmark drives, found on PATH (plus the sbin
 * folders, where Debian puts nginx), with an install hint when some are missing.
 */
import { accessSync, constants } from "node:fs";
import { delimiter, join } from "node:path";

/** Absolute paths of the programs the benchmark runs. */
export interface Tools {
  readonly nginx: string;
  readonly wrk: string;
  readonly curl: string;
  readonly sha256sum: string;
  /** The upload's other floor: it computes MD5 beside SHA-256 (issue 16). */
  readonly md5sum: string;
  readonly head: string;
  readonly sync: string;
  readonly vipsthumbnail: string;
}

/** Raised when a required program is not installed; its message says how to install them. */
export class MissingToolsError extends Error {
  constructor(readonly missing: readonly string[]) {
    super(
      `missing required program(s): ${missing.join(", ")}\n` +
        "Install them (Debian/Ubuntu, as root):\n" +
        "  apt-get update && apt-get install -y nginx-light wrk curl coreutils libvips-tools",
    );
    this.name = "MissingToolsError";
  }
}

const EXTRA_DIRS = ["/usr/local/sbin", "/usr/sbin", "/sbin"];

/** Finds every required program or throws MissingToolsError naming all that are absent. */
export function findTools(): Tools {
  const names = [
    "nginx",
    "wrk",
    "curl",
    "sha256sum",
    "md5sum",
    "head",
    "sync",
    "vipsthumbnail",
  ] as const;
  const found = new Map(names.map((name) => [name, findExecutable(name)]));
  const missing = names.filter((name) => found.get(name) === undefined);
  if (missing.length > 0) throw new MissingToolsError(missing);
  const path = (name: (typeof names)[number]) => found.get(name)!;
  return {
    nginx: path("nginx"),
    wrk: path("wrk"),
    curl: path("curl"),
    sha256sum: path("sha256sum"),
    md5sum: path("md5sum"),
    head: path("head"),
    sync: path("sync"),
    vipsthumbnail: path("vipsthumbnail"),
  };
}

/** The first executable called `name` on PATH or in the sbin folders. */
function findExecutable(name: string): string | undefined {
  const dirs = [...(process.env.PATH ?? "").split(delimiter).filter(Boolean), ...EXTRA_DIRS];
  for (const dir of dirs) {
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // Not here; keep looking.
    }
  }
  return undefined;
}
