/**
 * Coalesces `last_access_ts` updates: downloads only note the time in memory,
 * and the notes are written in one batch every `flushMs` and on `stop()`, so
 * a busy file costs one write a minute, and access times survive a restart.
 */
export interface AccessTimeStore {
  recordLocalAccess(accesses: ReadonlyMap<string, number>): Promise<void>;
  recordRemoteAccess(accesses: ReadonlyMap<string, number>): Promise<void>;
}

export interface AccessLogger {
  warn(obj: object, msg: string): void;
}

export class AccessTimes {
  #local = new Map<string, number>();
  #remote = new Map<string, number>();
  #timer: NodeJS.Timeout | undefined;
  #flushing: Promise<void> = Promise.resolve();

  constructor(
    private readonly store: AccessTimeStore,
    private readonly logger: AccessLogger,
    private readonly flushMs = 60_000,
    private readonly now: () => number = Date.now,
  ) {}

  /** Notes an access to local media now. */
  local(mediaId: string): void {
    this.#local.set(mediaId, this.now());
  }

  /** Notes an access to cached remote media now. */
  remote(origin: string, mediaId: string): void {
    this.#remote.set(`${origin}/${mediaId}`, this.now());
  }

  start(): void {
    this.#timer ??= setInterval(() => void this.flush(), this.flushMs);
    this.#timer.unref();
  }

  /** Writes every pending note; resolves when they are stored (errors are logged, notes kept). */
  flush(): Promise<void> {
    this.#flushing = this.#flushing.then(async () => {
      const local = this.#local;
      const remote = this.#remote;
      this.#local = new Map();
      this.#remote = new Map();
      try {
        await this.store.recordLocalAccess(local);
        await this.store.recordRemoteAccess(remote);
      } catch (error) {
        this.logger.warn({ err: error }, "could not record media access times; will retry");
        merge(this.#local, local);
        merge(this.#remote, remote);
      }
    });
    return this.#flushing;
  }

  /** Stops the timer and writes what is pending. */
  async stop(): Promise<void> {
    clearInterval(this.#timer);
    this.#timer = undefined;
    await this.flush();
  }
}

/** Puts the notes of a failed batch back, keeping the later time of each. */
function merge(into: Map<string, number>, from: ReadonlyMap<string, number>): void {
  for (const [key, ts] of from) {
    if ((into.get(key) ?? 0) < ts) into.set(key, ts);
  }
}
