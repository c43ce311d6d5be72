/**
 * A fake PDQ hasher for the stored-hash tests (src/media/media-hashing-service.ts
 * takes the hasher as a dependency): the "hash" is SHA-256 of `pdq:` + the
 * bytes, quality 90, and it counts calls and the most calls running at once.
 * `mode` makes it throw, hang (until `endHangs()`, long after the server's
 * time-out), or block until `release()`.
 */
import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import type { PdqOutcome } from "../../src/domain/media-hashes.js";

export type FakeHasherMode = "ok" | "throw" | "hang" | "block";

export class FakePdqHasher {
  mode: FakeHasherMode = "ok";
  calls = 0;
  inFlight = 0;
  maxInFlight = 0;
  #gate: Promise<void> = Promise.resolve();
  #open: () => void = () => {};
  #endHangs: () => void = () => {};
  readonly #hangs = new Promise<void>((resolve) => {
    this.#endHangs = resolve;
  });

  /** The fake's hash of `bytes`, as the server should store it. */
  static hashOf(bytes: Uint8Array): string {
    return createHash("sha256").update("pdq:").update(bytes).digest("hex");
  }

  /** Blocks every call from now on until `release()`. */
  block(): void {
    this.mode = "block";
    this.#gate = new Promise((resolve) => {
      this.#open = resolve;
    });
  }

  /** Lets every hung call finish (with a hash the server must ignore by then). */
  endHangs(): void {
    this.#endHangs();
  }

  release(): void {
    this.mode = "ok";
    this.#open();
  }

  readonly hash = async (input: Buffer | string): Promise<PdqOutcome> => {
    this.calls += 1;
    this.inFlight += 1;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    try {
      if (this.mode === "throw") throw new Error("fake hasher exploded");
      if (this.mode === "hang") await this.#hangs;
      if (this.mode === "block") await this.#gate;
      const bytes = typeof input === "string" ? await readFile(input) : input;
      return { hash: FakePdqHasher.hashOf(bytes), quality: 90 };
    } finally {
      this.inFlight -= 1;
    }
  };
}
