/**
 * A small pool of worker threads that run scrypt, so password hashing
 * never waits in — or fills — libuv's threadpool.
 *
 * Why: `crypto.scrypt` runs on libuv's threadpool (4 threads by default),
 * the same threads every `fs` call uses. A flood of logins kept all four
 * busy hashing and a 4 KiB download waited seconds behind them. Here each
 * worker runs `scryptSync` on its own thread, one job at a time, so file
 * reads keep libuv's threads to themselves.
 *
 * Bounded by construction: at most `workers` jobs run and at most
 * `maxQueue` wait; one more is refused at once with 429 M_LIMIT_EXCEEDED
 * rather than queued without bound. Workers start on first use, hold the
 * process open only while they have a job (so the CLI exits when done),
 * and a worker that dies fails its job and is replaced on the next one.
 */
import { Worker } from "node:worker_threads";
import { MatrixError } from "../domain/matrix-error.js";
import type { Kdf, ScryptJob } from "./password-hash.js";

export interface PasswordHashPoolOptions {
  /** Worker threads, each running one hash at a time (≥ 1). */
  readonly workers: number;
  /** Jobs that may wait for a worker; one more is refused with 429. */
  readonly maxQueue: number;
}

/** What the pool is doing, for metrics. */
export interface PasswordHashPoolStats {
  readonly running: number;
  readonly queued: number;
  /** Jobs refused because the queue was full, since start. */
  readonly rejected: number;
}

/** How long a refused client is told to wait: a queue drains in about that. */
const BUSY_RETRY_AFTER_MS = 1000;

/**
 * The worker's whole program. It is inline (an `eval` worker) so the same
 * code runs under tsx in tests and from dist/ in production, with no file
 * to resolve; it is plain CommonJS and needs only node:crypto.
 */
const WORKER_SOURCE = `
const { parentPort } = require("node:worker_threads");
const { scryptSync } = require("node:crypto");
parentPort.on("message", (job) => {
  try {
    const key = scryptSync(job.password, Buffer.from(job.salt), job.keyLength, {
      N: job.n, r: job.r, p: job.p, maxmem: 256 * job.n * job.r,
    });
    parentPort.postMessage({ key });
  } catch (error) {
    parentPort.postMessage({ error: String((error && error.message) || error) });
  }
});
`;

interface Pending {
  readonly job: ScryptJob;
  readonly resolve: (key: Buffer) => void;
  readonly reject: (error: Error) => void;
}

export class PasswordHashPool implements Kdf {
  readonly #options: PasswordHashPoolOptions;
  readonly #idle: Worker[] = [];
  readonly #busy = new Map<Worker, Pending>();
  readonly #queue: Pending[] = [];
  #rejected = 0;
  #closed = false;

  constructor(options: PasswordHashPoolOptions) {
    if (!Number.isInteger(options.workers) || options.workers < 1) {
      throw new RangeError(`password hash workers must be an integer >= 1, got ${options.workers}`);
    }
    this.#options = options;
  }

  get stats(): PasswordHashPoolStats {
    return { running: this.#busy.size, queued: this.#queue.length, rejected: this.#rejected };
  }

  /** Runs scrypt on a worker; 429 M_LIMIT_EXCEEDED when the queue is full. */
  derive(job: ScryptJob): Promise<Buffer> {
    if (this.#closed) return Promise.reject(new Error("password hash pool is closed"));
    return new Promise<Buffer>((resolve, reject) => {
      const pending = { job, resolve, reject };
      const worker = this.#takeWorker();
      if (worker) {
        this.#run(worker, pending);
        return;
      }
      if (this.#queue.length >= this.#options.maxQueue) {
        this.#rejected++;
        reject(
          new MatrixError("M_LIMIT_EXCEEDED", "Too many password checks in progress", 429, {
            retry_after_ms: BUSY_RETRY_AFTER_MS,
          }),
        );
        return;
      }
      this.#queue.push(pending);
    });
  }

  /** Stops every worker and fails waiting jobs. Idempotent. */
  async close(): Promise<void> {
    this.#closed = true;
    for (const pending of this.#queue.splice(0)) {
      pending.reject(new Error("password hash pool is closed"));
    }
    const workers = [...this.#idle.splice(0), ...this.#busy.keys()];
    for (const [, pending] of this.#busy) pending.reject(new Error("password hash pool is closed"));
    this.#busy.clear();
    await Promise.all(workers.map((worker) => worker.terminate()));
  }

  /** An idle worker, a new one while under the limit, or undefined. */
  #takeWorker(): Worker | undefined {
    const idle = this.#idle.pop();
    if (idle) return idle;
    if (this.#busy.size >= this.#options.workers) return undefined;
    const worker = new Worker(WORKER_SOURCE, { eval: true });
    worker.on("message", (reply: { key?: Uint8Array; error?: string }) => {
      const pending = this.#busy.get(worker);
      if (!pending) return;
      if (reply.key) pending.resolve(Buffer.from(reply.key));
      else pending.reject(new Error(`scrypt failed: ${reply.error}`));
      this.#finished(worker, true);
    });
    // A dead worker fails its job; the next job starts a fresh one.
    const died = (error: unknown) => {
      const pending = this.#busy.get(worker);
      pending?.reject(error instanceof Error ? error : new Error("password hash worker exited"));
      this.#finished(worker, false);
    };
    worker.on("error", died);
    worker.on("exit", () => died(undefined));
    return worker;
  }

  #run(worker: Worker, pending: Pending): void {
    this.#busy.set(worker, pending);
    worker.ref();
    const { password, salt, n, r, p, keyLength } = pending.job;
    worker.postMessage({ password, salt, n, r, p, keyLength });
  }

  /** Hands the worker the next queued job, or parks it (unref'd) as idle. */
  #finished(worker: Worker, alive: boolean): void {
    if (!this.#busy.delete(worker) && !alive) {
      const index = this.#idle.indexOf(worker);
      if (index >= 0) this.#idle.splice(index, 1);
    }
    if (this.#closed) return;
    const next = this.#queue.shift();
    const runner = alive ? worker : next && this.#takeWorker();
    if (next && runner) {
      this.#run(runner, next);
      return;
    }
    if (next) this.#queue.unshift(next);
    if (alive) {
      worker.unref();
      this.#idle.push(worker);
    }
  }
}
