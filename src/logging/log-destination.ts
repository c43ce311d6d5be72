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
 * hot path's last microseconds"). Each chunk is one non-blocking `write(2)`
 * from the main thread (fd-chunk-writer.ts), not pino's thread-pool writer.
 *
 * When lines go out: as soon as {@link LOG_BUFFER_CHARS} are waiting, else
 * at most {@link LOG_FLUSH_MS} after the first of them, and at the latest
 * when the process exits: on `process.exit`, the end of the event loop, or
 * an uncaught exception, the rest is written synchronously, after what was
 * already handed on, in order. Only a process killed outright (SIGKILL, the
 * out-of-memory killer) can lose the lines of its last {@link LOG_FLUSH_MS}.
 *
 * Bounded: when whatever reads stdout stops reading (a stalled journald,
 * docker or log shipper, a `| less` left open), at most
 * {@link LOG_BACKLOG_BYTES} wait in the writer; chunks beyond that are
 * dropped and their lines counted (`droppedLines`,
 * `mxcd_log_lines_dropped_total` on /metrics), and the first chunk the
 * writer takes again starts with a warning line that says how many were
 * lost. This is what HAProxy (its `DroppedLogs` counter) and docker's
 * non-blocking log mode do: a server must keep answering when its log
 * reader stalls, and memory must not grow with the stall's length. The
 * alternative, blocking writes, would stop every request of this
 * single-threaded process until the reader came back. At exit, a full
 * stdout is waited for {@link LOG_EXIT_WAIT_MS}, then the lines still held
 * are lost rather than keep the process from ending. A reader that is gone
 * for good (EPIPE) ends the writing: every later line is dropped and
 * counted, without another `write(2)` (fd-chunk-writer.ts).
 * docs/deployment.md, "Logging".
 */
import { FdChunkWriter } from "./fd-chunk-writer.js";

/** Characters of log lines collected before they are written. */
export const LOG_BUFFER_CHARS = 16 * 1024;
/** The longest a line waits when the server is quiet. */
export const LOG_FLUSH_MS = 200;
/**
 * Bytes handed to the writer and not yet written before new chunks are
 * dropped: ~10,000 request lines, seconds of a busy server's log, enough to
 * ride out a log shipper's restart.
 */
export const LOG_BACKLOG_BYTES = 4 * 1024 * 1024;
/** At exit, how long a full stdout is waited for before the lines still held are dropped. */
export const LOG_EXIT_WAIT_MS = 1000;

/** Where chunks go: a {@link FdChunkWriter} on stdout, or a test's sink. */
export interface ChunkWriter {
  /** Takes `chunk`; returns `false` when it refused it (its backlog is full, or its reader is gone). */
  write(chunk: string): unknown;
  /** Writes what it holds before the process ends. */
  flushSync?(): void;
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
  readonly #bufferChars: number;
  readonly #flushMs: number;
  /** Dropped lines not yet announced in the log itself. */
  #unannounced = 0;
  /** Chunks handed to the writer so far (for tests and benches). */
  chunks = 0;
  /** Lines lost because the writer's backlog was full. */
  droppedLines = 0;

  constructor(out: ChunkWriter, options: LogDestinationOptions = {}) {
    this.#out = out;
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

  /** pino's `logger.flush(cb)`: hands the pending lines on. */
  flush(callback?: (error?: Error | null) => void): void {
    this.#handOn();
    callback?.();
  }

  /** Writes everything now, synchronously (at exit). Never throws. */
  flushSync(): void {
    const lines = this.#pending.length;
    const text = this.#take();
    try {
      if (text !== "") this.#hand(text, lines);
      this.#out.flushSync?.();
    } catch {
      // At exit there is nowhere left to report a failed log write.
    }
  }

  #handOn(): void {
    const lines = this.#pending.length;
    const text = this.#take();
    if (text !== "") this.#hand(text, lines);
  }

  /** Hands `text` (`lines` lines) on, after the warning of earlier drops if any. */
  #hand(text: string, lines: number): void {
    const announced = this.#unannounced;
    const chunk = announced === 0 ? text : droppedWarning(announced, Date.now()) + text;
    this.chunks += 1;
    if (this.#out.write(chunk) === false) {
      this.droppedLines += lines;
      this.#unannounced += lines;
      return;
    }
    this.#unannounced -= announced;
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
 * The buffered destination on file descriptor `fd` (stdout): a
 * {@link FdChunkWriter} underneath, and the rest written when the process exits.
 */
export function createLogDestination(
  fd = 1,
  options?: LogDestinationOptions & { readonly backlogBytes?: number },
): BufferedLogDestination {
  // Node's own stdout stream, once opened, makes a pipe or socket
  // non-blocking (libuv's uv_pipe_open), as in any Node program that writes
  // to process.stdout: a full pipe then answers EAGAIN instead of stopping
  // the writing thread until the reader comes back.
  if (fd === 1) void process.stdout;
  const out = new FdChunkWriter(fd, options?.backlogBytes ?? LOG_BACKLOG_BYTES, LOG_EXIT_WAIT_MS);
  const destination = new BufferedLogDestination(out, options);
  process.on("exit", () => destination.flushSync());
  return destination;
}

/** The line that says `lines` were dropped, in pino's shape (level 40 is `warn`). */
function droppedWarning(lines: number, time: number): string {
  return `{"level":40,"time":${time},"droppedLines":${lines},"msg":"log lines dropped: standard output was not read fast enough"}\n`;
}
