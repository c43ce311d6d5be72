/**
 * The destination of `mxcd serve`'s log: stdout, with lines collected into
 * chunks of about {@link LOG_BUFFER_CHARS} characters, each written at once.
 *
 * Why: pino's default destination on stdout is asynchronous but not
 * buffered: a line becomes its own `write(2)` on libuv's thread pool
 * whenever no write is in flight, a thread hand-off and wake-up per line;
 * its own `minLength` buffering re-measures and re-concatenates the whole
 * pending string on every line, which costs more than it saves. Collecting
 * lines in an array and joining them once per chunk made the request line
 * of a cached download cost a third of what it did (bench/README.md, "The
 * hot path's last microseconds").
 *
 * When lines go out: as soon as {@link LOG_BUFFER_CHARS} are waiting, else
 * at most {@link LOG_FLUSH_MS} after the first of them, and at the latest
 * when the process exits: on `process.exit`, the end of the event loop, or
 * an uncaught exception, the rest is written synchronously, after what was
 * already handed on, in order. Only a process killed outright (SIGKILL, the
 * out-of-memory killer) can lose the lines of its last {@link LOG_FLUSH_MS}.
 * docs/deployment.md, "Logging".
 */
import { writeSync } from "node:fs";
import { pino } from "pino";

/** Characters of log lines collected before they are written. */
export const LOG_BUFFER_CHARS = 16 * 1024;
/** The longest a line waits when the server is quiet. */
export const LOG_FLUSH_MS = 200;

/** Where chunks go: pino's own asynchronous stdout writer (sonic-boom), or a test's sink. */
export interface ChunkWriter {
  write(chunk: string): unknown;
  flushSync?(): void;
  flush?(callback?: (error?: Error | null) => void): void;
  readonly destroyed?: boolean;
}

export interface LogDestinationOptions {
  readonly bufferChars?: number;
  readonly flushMs?: number;
}

export class BufferedLogDestination {
  #pending: string[] = [];
  #chars = 0;
  #timer: NodeJS.Timeout | undefined;
  readonly #out: ChunkWriter;
  readonly #fd: number | undefined;
  readonly #bufferChars: number;
  readonly #flushMs: number;
  /** Chunks handed to the writer so far (for tests and benches). */
  chunks = 0;

  /** `fd` is the file written to directly at exit if `out` is closed by then. */
  constructor(out: ChunkWriter, fd?: number, options: LogDestinationOptions = {}) {
    this.#out = out;
    this.#fd = fd;
    this.#bufferChars = options.bufferChars ?? LOG_BUFFER_CHARS;
    this.#flushMs = options.flushMs ?? LOG_FLUSH_MS;
  }

  write(line: string): boolean {
    this.#pending.push(line);
    this.#chars += line.length;
    if (this.#chars >= this.#bufferChars) this.#handOn();
    else if (this.#timer === undefined) {
      this.#timer = setTimeout(() => this.#handOn(), this.#flushMs);
      this.#timer.unref();
    }
    return true;
  }

  /** pino's `logger.flush(cb)`: hands the pending lines on and flushes the writer. */
  flush(callback?: (error?: Error | null) => void): void {
    this.#handOn();
    if (this.#out.flush) this.#out.flush(callback);
    else callback?.();
  }

  /** Writes everything now, synchronously (at exit). Never throws. */
  flushSync(): void {
    const text = this.#take();
    try {
      // What the writer holds goes first, then the rest straight to the file:
      // handed to the asynchronous writer at exit, it would become a write on
      // the thread pool that the exiting process does not wait for, and the
      // last lines were lost whenever the process ended first.
      if (!this.#out.destroyed) this.#out.flushSync?.();
      if (text === "") return;
      if (this.#fd !== undefined) writeAllSync(this.#fd, text);
      else if (!this.#out.destroyed) {
        this.chunks += 1;
        this.#out.write(text);
      }
    } catch {
      // At exit there is nowhere left to report a failed log write.
    }
  }

  #handOn(): void {
    const text = this.#take();
    if (text === "") return;
    this.chunks += 1;
    this.#out.write(text);
  }

  #take(): string {
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    if (this.#pending.length === 0) return "";
    const text = this.#pending.length === 1 ? this.#pending[0]! : this.#pending.join("");
    this.#pending = [];
    this.#chars = 0;
    return text;
  }
}

/**
 * The buffered destination on file descriptor `fd` (stdout): pino's
 * asynchronous writer underneath, and the rest written when the process exits.
 */
export function createLogDestination(
  fd = 1,
  options?: LogDestinationOptions,
): BufferedLogDestination {
  const out = pino.destination({ dest: fd, sync: false }) as unknown as ChunkWriter;
  const destination = new BufferedLogDestination(out, fd, options);
  process.on("exit", () => destination.flushSync());
  return destination;
}

function writeAllSync(fd: number, text: string): void {
  let rest = Buffer.from(text);
  for (let attempts = 0; rest.length > 0 && attempts < 1000; attempts++) {
    try {
      rest = rest.subarray(writeSync(fd, rest));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EAGAIN") return;
    }
  }
}
