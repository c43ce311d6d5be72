/**
 * Writes the log destination's chunks (log-destination.ts) to a file
 * descriptor from the main thread, without ever waiting on the reader:
 * stdout is non-blocking (see `createLogDestination`), so a `write(2)` takes
 * what fits in the pipe now and the rest waits in a queue, retried every
 * {@link RETRY_MS}. Nothing is ever in flight on another thread, so the
 * synchronous flush at exit knows exactly what was written and what was not
 * (pino's sonic-boom writes on libuv's thread pool; at exit a chunk whose
 * write had just met EAGAIN there was lost).
 *
 * Bounded: at most `maxBytes` wait; a chunk that would go beyond is refused
 * (`write` returns false) and the caller counts its lines. A reader that is
 * gone (EPIPE, or any error but EAGAIN) ends the writing: what is queued is
 * discarded, and every later chunk is refused at once (false, so the caller
 * counts its lines as dropped), with no further `write(2)` and no retry
 * timer. A process whose log reader died (`mxcd serve | head`) keeps
 * serving; Node ignores SIGPIPE, so the write fails instead of killing it.
 */
import { writeSync } from "node:fs";

/** How often a full pipe is tried again. */
const RETRY_MS = 20;
/** A 4-byte shared buffer to sleep on at exit (Atomics.wait), when nothing else can run. */
const sleeper = new Int32Array(new SharedArrayBuffer(4));

export class FdChunkWriter {
  #queue: Buffer[] = [];
  #queued = 0;
  #timer: NodeJS.Timeout | undefined;
  #gone = false;

  /** Writes to `fd`; at most `maxBytes` wait; at exit, a full pipe is waited for `exitWaitMs`. */
  constructor(
    private readonly fd: number,
    private readonly maxBytes: number,
    private readonly exitWaitMs: number,
  ) {}

  /** Bytes waiting for the reader. */
  get queuedBytes(): number {
    return this.#queued;
  }

  /**
   * Queues `chunk` and writes what the reader takes now; false when it was
   * refused (full) or lost (the reader is gone, now or before).
   */
  write(chunk: string): boolean {
    if (this.#gone) return false;
    const bytes = Buffer.from(chunk);
    if (this.#queued + bytes.length > this.maxBytes) return false;
    this.#queue.push(bytes);
    this.#queued += bytes.length;
    if (this.#timer === undefined) this.#writeSome();
    return !this.#gone;
  }

  /** Writes everything now (at exit), waiting at most `exitWaitMs` for a full pipe. Never throws. */
  flushSync(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    const deadline = Date.now() + this.exitWaitMs;
    while (this.#queue.length > 0 && !this.#gone) {
      if (this.#writeHead() === "full") {
        if (Date.now() >= deadline) return;
        Atomics.wait(sleeper, 0, 0, RETRY_MS);
      }
    }
  }

  /** Writes queued chunks until the pipe is full, then tries again later. */
  #writeSome(): void {
    this.#timer = undefined;
    while (this.#queue.length > 0 && !this.#gone) {
      if (this.#writeHead() === "full") {
        this.#timer = setTimeout(() => this.#writeSome(), RETRY_MS);
        this.#timer.unref(); // the exit flush writes what is left
        return;
      }
    }
  }

  /** One `write(2)` of the first chunk: all of it ("done") or some/none ("full"). */
  #writeHead(): "done" | "full" {
    const head = this.#queue[0]!;
    let written: number;
    try {
      written = writeSync(this.fd, head);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "EAGAIN") return "full";
      this.#gone = true;
      this.#queue = [];
      this.#queued = 0;
      return "done";
    }
    this.#queued -= written;
    if (written < head.length) {
      this.#queue[0] = head.subarray(written);
      return "full";
    }
    this.#queue.shift();
    return "done";
  }
}
