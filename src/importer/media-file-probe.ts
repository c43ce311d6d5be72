/**
 * Checks that a Synapse media file is there, readable and of the length the
 * database says, without reading its bytes: open read-only, fstat, close.
 * Keys come from media-paths.ts, whose functions reject any id or origin
 * that is not a safe path component, so a hostile row in the source
 * database cannot make us open a file outside the media store.
 */
import { createHash } from "node:crypto";
import { closeSync, createReadStream, fstatSync, openSync } from "node:fs";
import { join, resolve } from "node:path";
import { pipeline } from "node:stream/promises";
import { assertSafeKey } from "../storage/media-paths.js";

/** What was found at a key: its size, or why it cannot be served. */
export type ProbeResult =
  | { readonly ok: true; readonly size: number }
  | { readonly ok: false; readonly problem: "missing" | "unreadable" | "not a file" };

/** Probes files under one media store root. */
export class MediaFileProbe {
  readonly root: string;

  constructor(root: string) {
    this.root = resolve(root);
  }

  /**
   * Synchronous on purpose: the import probes every row's file one after
   * another, and three thread-pool round trips per file (open, fstat,
   * close) left the process idle most of the time (100,000 rows on SQLite:
   * 22 s, of which about two thirds waiting; see bench/README.md "Import").
   * Each call is three cheap system calls on a local file system; the event
   * loop still turns between rows, at every database statement.
   */
  async probe(key: string): Promise<ProbeResult> {
    const path = join(this.root, assertSafeKey(key));
    let fd: number;
    try {
      fd = openSync(path, "r");
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      return {
        ok: false,
        problem: code === "ENOENT" || code === "ENOTDIR" ? "missing" : "unreadable",
      };
    }
    try {
      const stat = fstatSync(fd);
      if (!stat.isFile()) return { ok: false, problem: "not a file" };
      return { ok: true, size: stat.size };
    } catch {
      return { ok: false, problem: "unreadable" };
    } finally {
      closeSync(fd);
    }
  }

  /** Lowercase hex SHA-256 of the file's bytes, streamed. */
  async sha256(key: string): Promise<string> {
    const hash = createHash("sha256");
    await pipeline(createReadStream(join(this.root, assertSafeKey(key))), hash);
    return hash.digest("hex");
  }

  /** Missing/unreadable, or "truncated"/"size differs" against `expected`; undefined when fine. */
  async check(key: string, expected: number): Promise<string | undefined> {
    const found = await this.probe(key);
    if (!found.ok) return found.problem;
    if (found.size === expected) return undefined;
    return found.size < expected
      ? `truncated (${found.size} of ${expected} bytes)`
      : `size differs (${found.size}, expected ${expected} bytes)`;
  }
}
