/**
 * MD5 of uploads on worker threads, beside the SHA-256 that stays on the
 * main thread (docs/media.md "Hashes while streaming").
 *
 * Why: issue 16 stores an MD5 of every blob, computed while it streams (HMA's
 * `video_md5`). MD5 runs at less than half the speed of SHA-256 on this kind
 * of CPU (no MD5 instructions), so both on the main thread made a large upload
 * about 3× slower than SHA-256 alone. Here each large upload's MD5 runs on a
 * worker while the main thread hashes SHA-256 and writes the file: the upload
 * is then bound by the slower hash on its own core, not by the two in series.
 *
 * Design note.
 * - **Small uploads stay on the main thread.** The chunks of an upload are
 *   held (by reference: they go on to the blob store anyway) until
 *   `thresholdBytes`; an upload that ends below it is hashed in one call on
 *   the main thread, with no worker and no copy. Past it, a session opens on
 *   a worker and everything held is sent.
 * - **Copied, never detached.** A chunk also goes to the blob store (and to a
 *   live download of remote media) and may be a slice of a pooled buffer, so
 *   it cannot be transferred. Chunks are copied into a batch of `batchBytes`
 *   (one memcpy per byte); the batch's own buffer is transferred to the
 *   worker and back with its acknowledgement, and reused: an upload
 *   allocates at most `maxInFlightBytes / batchBytes + 1` batches, however
 *   large it is (fresh buffers per batch grew a 1 GiB upload's RSS by
 *   ~100 MiB: bench/README.md).
 * - **Bounded.** At most `maxInFlightBytes` per upload are posted and not yet
 *   hashed; past that `update` says "wait" and `drained()` resolves on the
 *   worker's acknowledgement, so the UploadMeter holds the stream back. The
 *   worker acknowledges every batch it hashed. Workers: at most
 *   `maxWorkers`, started on the first large upload (never at start-up:
 *   memory at rest), each serving any number of uploads (an upload goes to
 *   the worker with the fewest).
 * - **Failure.** A worker that dies (crash, exit) fails every upload it
 *   served with Md5WorkerError — the upload then fails and leaves nothing, as
 *   any store failure does — and is replaced on the next large upload. When
 *   no worker can be had (a thread fails to start, the pool closed) the
 *   upload's held bytes are hashed on the main thread and it goes on there. A
 *   destroyed upload drops its state on the worker. `close()` stops every
 *   worker and fails what is in flight; idle workers are unref'd, so they
 *   never keep a process (or a test runner) alive.
 */
import { createHash } from "node:crypto";
import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";

/** The MD5 of one stream, fed chunk by chunk (UploadMeter). */
export interface Md5Hasher {
  /**
   * Feeds the next chunk. The chunk is not modified nor kept beyond
   * `digest()`. False: too many bytes are in flight; wait for `drained()`.
   */
  update(chunk: Buffer): boolean;
  /** Resolves when the bytes in flight are back under the bound; rejects when hashing failed. */
  drained(): Promise<void>;
  /** Lowercase hex MD5 of every chunk; call once, after the last `update`. */
  digest(): Promise<string>;
  /** Drops the state (an aborted upload). Idempotent. */
  destroy(): void;
}

/** Makes one Md5Hasher per stream. */
export interface Md5Hashers {
  create(): Md5Hasher;
}

export interface Md5WorkerPoolOptions {
  /** Worker threads at most (≥ 1); default the number of cores. */
  readonly maxWorkers?: number;
  /** Uploads smaller than this are hashed on the main thread. */
  readonly thresholdBytes?: number;
  /** Bytes copied into one message to a worker. */
  readonly batchBytes?: number;
  /** Bytes per upload posted to a worker and not yet hashed, at most (≥ batchBytes). */
  readonly maxInFlightBytes?: number;
  /** Starts a worker running WORKER_SOURCE; tests pass one that dies. */
  readonly spawn?: () => Worker;
}

/** The pool's counters, for metrics and tests. */
export interface Md5WorkerPoolStats {
  /** Worker threads alive. */
  readonly workers: number;
  /** Uploads whose MD5 is on a worker now. */
  readonly sessions: number;
  /** Bytes hashed on workers (acknowledged), since start. */
  readonly offloadedBytes: number;
  /** Uploads hashed on the main thread (below the threshold), since start. */
  readonly mainThreadUploads: number;
  /** Workers that died with uploads or without, since start. */
  readonly workerFailures: number;
  /** Batch buffers allocated, since start (reused while an upload lasts). */
  readonly batchesAllocated: number;
}

/** The upload's MD5 worker died or the pool closed before its digest. */
export class Md5WorkerError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "Md5WorkerError";
  }
}

/** Measured in bench/README.md "MD5 on a worker thread". */
const DEFAULTS = {
  thresholdBytes: 1024 ** 2,
  batchBytes: 1024 ** 2,
  maxInFlightBytes: 8 * 1024 ** 2,
};

/**
 * The worker's whole program: one MD5 state per upload id. Messages:
 * `{ id, bytes }` hash and acknowledge, `{ id, end: true }` answer the
 * digest, `{ id, drop: true }` forget. Inline (an `eval` worker, as the
 * password pool) so it runs the same under tsx and from dist/.
 */
export const WORKER_SOURCE = `
const { parentPort } = require("node:worker_threads");
const { createHash } = require("node:crypto");
const states = new Map();
parentPort.on("message", (message) => {
  const { id } = message;
  if (message.bytes) {
    let hash = states.get(id);
    if (!hash) states.set(id, (hash = createHash("md5")));
    hash.update(message.bytes);
    // The batch's buffer goes back with the acknowledgement, to be reused.
    const back = message.bytes.buffer;
    parentPort.postMessage({ id, acked: message.bytes.byteLength, back }, [back]);
  } else if (message.end) {
    const hash = states.get(id) || createHash("md5");
    states.delete(id);
    parentPort.postMessage({ id, digest: hash.digest("hex") });
  } else if (message.drop) {
    states.delete(id);
  }
});
`;

type Reply = { id: number; acked: number; back?: ArrayBuffer } | { id: number; digest: string };

export class Md5WorkerPool implements Md5Hashers {
  readonly #maxWorkers: number;
  readonly #threshold: number;
  readonly #batch: number;
  readonly #maxInFlight: number;
  readonly #spawn: () => Worker;
  /** Live workers and the sessions each serves. */
  readonly #workers = new Map<Worker, Map<number, WorkerSession>>();
  #nextId = 1;
  #offloaded = 0;
  #mainThread = 0;
  #failures = 0;
  #batches = 0;
  #closed = false;

  constructor(options: Md5WorkerPoolOptions = {}) {
    this.#maxWorkers = options.maxWorkers ?? availableParallelism();
    this.#threshold = options.thresholdBytes ?? DEFAULTS.thresholdBytes;
    this.#batch = options.batchBytes ?? DEFAULTS.batchBytes;
    this.#maxInFlight = Math.max(
      options.maxInFlightBytes ?? DEFAULTS.maxInFlightBytes,
      this.#batch,
    );
    this.#spawn = options.spawn ?? (() => new Worker(WORKER_SOURCE, { eval: true }));
    if (!Number.isInteger(this.#maxWorkers) || this.#maxWorkers < 1) {
      throw new RangeError(`MD5 workers must be an integer >= 1, got ${this.#maxWorkers}`);
    }
  }

  get stats(): Md5WorkerPoolStats {
    let sessions = 0;
    for (const served of this.#workers.values()) sessions += served.size;
    return {
      workers: this.#workers.size,
      sessions,
      offloadedBytes: this.#offloaded,
      mainThreadUploads: this.#mainThread,
      workerFailures: this.#failures,
      batchesAllocated: this.#batches,
    };
  }

  create(): Md5Hasher {
    return new DeferredMd5(this.#threshold, {
      open: () => this.#open(),
      mainThread: () => {
        this.#mainThread++;
      },
    });
  }

  /** Stops every worker; uploads on them fail. Idempotent. */
  async close(): Promise<void> {
    this.#closed = true;
    const workers = [...this.#workers.keys()];
    for (const worker of workers) this.#fail(worker, new Md5WorkerError("MD5 pool closed"));
    await Promise.all(workers.map((worker) => worker.terminate()));
  }

  /** A session on the least busy worker, or a new worker while under the limit. */
  #open(): WorkerSession {
    if (this.#closed) throw new Md5WorkerError("MD5 pool closed");
    let chosen: Worker | undefined;
    let fewest = Number.POSITIVE_INFINITY;
    for (const [worker, served] of this.#workers) {
      if (served.size < fewest) [chosen, fewest] = [worker, served.size];
    }
    if (!chosen || (fewest > 0 && this.#workers.size < this.#maxWorkers)) chosen = this.#start();
    const worker = chosen;
    const served = this.#workers.get(worker)!;
    const id = this.#nextId++;
    const session = new WorkerSession(this.#batch, this.#maxInFlight, {
      post: (message, transfer) => worker.postMessage({ id, ...message }, transfer),
      acked: (bytes) => {
        this.#offloaded += bytes;
      },
      allocate: (bytes) => {
        this.#batches++;
        return Buffer.allocUnsafeSlow(bytes);
      },
      done: () => {
        if (served.delete(id) && served.size === 0) worker.unref();
      },
    });
    served.set(id, session);
    worker.ref();
    return session;
  }

  #start(): Worker {
    const worker = this.#spawn();
    const served = new Map<number, WorkerSession>();
    this.#workers.set(worker, served);
    worker.unref();
    worker.on("message", (reply: Reply) => served.get(reply.id)?.receive(reply));
    worker.on("error", (error) =>
      this.#fail(worker, new Md5WorkerError("MD5 worker failed", { cause: error })),
    );
    worker.on("exit", (code) =>
      this.#fail(worker, new Md5WorkerError(`MD5 worker exited (${code})`)),
    );
    return worker;
  }

  /** Forgets a dead (or closing) worker and fails every upload it served. */
  #fail(worker: Worker, error: Md5WorkerError): void {
    const served = this.#workers.get(worker);
    if (!served) return;
    this.#workers.delete(worker);
    if (!this.#closed) this.#failures++;
    for (const session of [...served.values()]) session.fail(error);
    served.clear();
    worker.unref();
  }
}

/** A hasher that decides at `threshold` bytes: main thread below, a worker session above. */
class DeferredMd5 implements Md5Hasher {
  #held: Buffer[] = [];
  #heldBytes = 0;
  #session: Md5Hasher | undefined;
  #destroyed = false;

  constructor(
    private readonly threshold: number,
    private readonly pool: { open(): WorkerSession; mainThread(): void },
  ) {}

  update(chunk: Buffer): boolean {
    if (this.#session) return this.#session.update(chunk);
    this.#held.push(chunk);
    this.#heldBytes += chunk.length;
    if (this.#heldBytes < this.threshold) return true;
    let session: Md5Hasher;
    try {
      session = this.pool.open();
    } catch {
      // No worker (the pool closed, or a thread could not start): every byte
      // so far is still held, so the MD5 goes on here instead.
      this.pool.mainThread();
      session = MAIN_THREAD_MD5.create();
    }
    this.#session = session;
    let goOn = true;
    for (const held of this.#held.splice(0)) goOn = session.update(held);
    return goOn;
  }

  drained(): Promise<void> {
    return this.#session ? this.#session.drained() : Promise.resolve();
  }

  async digest(): Promise<string> {
    if (this.#session) return this.#session.digest();
    this.pool.mainThread();
    const hash = createHash("md5");
    for (const held of this.#held.splice(0)) hash.update(held);
    return hash.digest("hex");
  }

  destroy(): void {
    if (this.#destroyed) return;
    this.#destroyed = true;
    this.#held = [];
    this.#session?.destroy();
  }
}

interface SessionLink {
  post(message: object, transfer: ArrayBuffer[]): void;
  acked(bytes: number): void;
  /** A new batch buffer (counted). */
  allocate(bytes: number): Buffer;
  /** The session needs the worker no more. */
  done(): void;
}

/** One upload's MD5 on a worker: batches copied out, acknowledgements counted. */
class WorkerSession implements Md5Hasher {
  #batch: Buffer;
  /** Batches back from the worker, for reuse. */
  readonly #spare: Buffer[] = [];
  #filled = 0;
  #inFlight = 0;
  #failed: Error | undefined;
  #finished = false;
  #completed = false;
  #waiters: { resolve: () => void; reject: (error: Error) => void }[] = [];
  #digest: { resolve: (digest: string) => void; reject: (error: Error) => void } | undefined;

  constructor(
    private readonly batchBytes: number,
    private readonly maxInFlight: number,
    private readonly link: SessionLink,
  ) {
    this.#batch = link.allocate(batchBytes);
  }

  update(chunk: Buffer): boolean {
    if (this.#failed || this.#finished) return false;
    let at = 0;
    while (at < chunk.length) {
      const copied = chunk.copy(this.#batch, this.#filled, at);
      this.#filled += copied;
      at += copied;
      if (this.#filled === this.batchBytes) this.#send();
    }
    return this.#inFlight <= this.maxInFlight;
  }

  drained(): Promise<void> {
    if (this.#failed) return Promise.reject(this.#failed);
    if (this.#inFlight <= this.maxInFlight || this.#finished) return Promise.resolve();
    return new Promise((resolve, reject) => this.#waiters.push({ resolve, reject }));
  }

  digest(): Promise<string> {
    if (this.#failed) return Promise.reject(this.#failed);
    if (this.#finished) return Promise.reject(new Md5WorkerError("MD5 digest asked twice"));
    this.#finished = true;
    this.#spare.length = 0;
    if (this.#filled > 0) this.#send();
    return new Promise((resolve, reject) => {
      this.#digest = { resolve, reject };
      this.link.post({ end: true }, []);
    });
  }

  destroy(): void {
    if (this.#failed || this.#completed) return;
    this.#failed = new Md5WorkerError("upload destroyed");
    this.link.post({ drop: true }, []);
    this.#settle();
  }

  /** A reply from the worker. */
  receive(reply: Reply): void {
    if ("acked" in reply) {
      this.#inFlight -= reply.acked;
      if (reply.back?.byteLength === this.batchBytes && !this.#finished && !this.#failed) {
        this.#spare.push(Buffer.from(reply.back));
      }
      this.link.acked(reply.acked);
      if (this.#inFlight <= this.maxInFlight) {
        for (const waiter of this.#waiters.splice(0)) waiter.resolve();
      }
      return;
    }
    const digest = this.#digest;
    this.#digest = undefined;
    this.#completed = true;
    this.link.done();
    digest?.resolve(reply.digest);
  }

  /** The worker died or the pool closed. */
  fail(error: Error): void {
    if (this.#failed) return;
    this.#failed = error;
    this.#settle();
  }

  #send(): void {
    const bytes =
      this.#filled === this.batchBytes ? this.#batch : this.#batch.subarray(0, this.#filled);
    const view = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length);
    this.#inFlight += this.#filled;
    this.link.post({ bytes: view }, [bytes.buffer as ArrayBuffer]);
    this.#filled = 0;
    this.#batch = this.#finished
      ? Buffer.alloc(0)
      : (this.#spare.pop() ?? this.link.allocate(this.batchBytes));
  }

  /** Fails waiters and the digest with the stored error, and lets go of the worker. */
  #settle(): void {
    const error = this.#failed!;
    for (const waiter of this.#waiters.splice(0)) waiter.reject(error);
    this.#digest?.reject(error);
    this.#digest = undefined;
    this.#batch = Buffer.alloc(0);
    this.#spare.length = 0;
    this.link.done();
  }
}

/** MD5 on the calling thread: the UploadMeter's default outside the server (tests, tools). */
export const MAIN_THREAD_MD5: Md5Hashers = {
  create(): Md5Hasher {
    const hash = createHash("md5");
    return {
      update: (chunk) => {
        hash.update(chunk);
        return true;
      },
      drained: () => Promise.resolve(),
      digest: () => Promise.resolve(hash.digest("hex")),
      destroy: () => {},
    };
  },
};
