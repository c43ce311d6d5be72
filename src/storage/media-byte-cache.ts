/**
 * The bytes of small blobs (avatars, stickers, thumbnails) kept in memory, so
 * that a hot download costs no file open/stat/read/close.
 *
 * Design notes:
 * - It caches bytes only, never a permission: callers read it only after
 *   every check (auth, quarantine, the metadata lookup) has passed, exactly
 *   where they would otherwise read the store. A deleted or quarantined item
 *   is refused by those checks before the cache is asked.
 * - Bounded by construction: an LRU whose sizes are the buffers' lengths
 *   (`maxBytes` in all), and nothing larger than `maxItemBytes` is ever read
 *   into memory for it. A fill in flight holds at most `maxItemBytes`.
 * - Every entry is tagged with the media it belongs to, so that a change to
 *   a media item (deletion, quarantine, purge: the `MediaChanges` bus) can
 *   drop all of its blobs, the original and its thumbnails, by media.
 * - A fill that raced an eviction (the blob was deleted or rewritten while
 *   it was being read) is served to its own request but not kept.
 */
import type { Readable } from "node:stream";
import { LRUCache } from "lru-cache";

/** The media item a blob belongs to. */
export type MediaOwner =
  | { readonly kind: "local"; readonly mediaId: string }
  | { readonly kind: "remote"; readonly origin: string; readonly mediaId: string };

export interface MediaByteCacheLimits {
  /** Most bytes kept in all; 0 turns the cache off. */
  readonly maxBytes: number;
  /** Largest blob kept (and read into memory for the cache). */
  readonly maxItemBytes: number;
}

/** What the metrics read. */
interface MediaByteCacheStats {
  readonly bytes: number;
  readonly hits: number;
  readonly misses: number;
}

interface Entry {
  readonly bytes: Buffer;
  readonly tag: string;
}

interface Fill {
  readonly tag: string;
  readonly done: Promise<Buffer | undefined>;
  /** Set when the key was evicted while the fill was reading it. */
  invalidated: boolean;
}

function tagOf(owner: MediaOwner): string {
  // `\n` cannot occur in a server name or media id (both validated grammars).
  return owner.kind === "local" ? `l\n${owner.mediaId}` : `r\n${owner.origin}\n${owner.mediaId}`;
}

export class MediaByteCache implements MediaByteCacheStats {
  readonly #limits: MediaByteCacheLimits;
  readonly #lru: LRUCache<string, Entry> | undefined;
  /** tag → keys of that media in the LRU; kept in step by `dispose`. */
  readonly #byTag = new Map<string, Set<string>>();
  /** Fills in flight, one per key; bounded by the requests in flight. */
  readonly #filling = new Map<string, Fill>();
  #hits = 0;
  #misses = 0;

  constructor(limits: MediaByteCacheLimits) {
    this.#limits = limits;
    if (limits.maxBytes <= 0 || limits.maxItemBytes <= 0) return;
    this.#lru = new LRUCache<string, Entry>({
      maxSize: limits.maxBytes,
      maxEntrySize: Math.min(limits.maxItemBytes, limits.maxBytes),
      // An empty blob still costs an entry: count it as one byte.
      sizeCalculation: (entry) => Math.max(1, entry.bytes.length),
      dispose: (entry, key) => this.#untag(entry.tag, key),
    });
  }

  /** Bytes held now (never above `maxBytes`). */
  get bytes(): number {
    return this.#lru?.calculatedSize ?? 0;
  }
  get hits(): number {
    return this.#hits;
  }
  get misses(): number {
    return this.#misses;
  }

  /** True when a blob of `length` bytes is one the cache takes. */
  accepts(length: number): boolean {
    return this.#lru !== undefined && length <= this.#limits.maxItemBytes;
  }

  /** The blob under `key` if it is held (a hit), else undefined (not counted as a miss). */
  peek(key: string): Buffer | undefined {
    const cached = this.#lru?.get(key);
    if (cached) this.#hits++;
    return cached?.bytes;
  }

  /**
   * The whole blob under `key`, from memory or read with `open` (once, even
   * for concurrent callers) and kept; `undefined` when the bytes read were
   * not `length` long (a store that changed under its row: the caller
   * streams instead). Call only after every access check, with
   * `accepts(length)` true.
   */
  async get(
    key: string,
    owner: MediaOwner,
    length: number,
    open: () => Promise<Readable>,
  ): Promise<Buffer | undefined> {
    const lru = this.#lru;
    if (!lru) throw new Error("the media byte cache is off");
    const cached = lru.get(key);
    if (cached) {
      this.#hits++;
      return cached.bytes;
    }
    this.#misses++;
    const pending = this.#filling.get(key);
    if (pending) return pending.done;
    const tag = tagOf(owner);
    const fill: Fill = {
      tag,
      invalidated: false,
      done: readExactly(open, length).then((bytes) => {
        if (bytes && !fill.invalidated) this.#keep(key, tag, bytes);
        return bytes;
      }),
    };
    this.#filling.set(key, fill);
    try {
      return await fill.done;
    } finally {
      this.#filling.delete(key);
    }
  }

  /** Drops one store key (its blob was deleted or rewritten). */
  evictKey(key: string): void {
    const fill = this.#filling.get(key);
    if (fill) fill.invalidated = true;
    this.#lru?.delete(key);
  }

  /** Drops every blob of a media item: its content and its thumbnails. */
  evict(owner: MediaOwner): void {
    this.#evictTag(tagOf(owner));
  }

  /** Drops everything. */
  clear(): void {
    for (const fill of this.#filling.values()) fill.invalidated = true;
    this.#lru?.clear();
  }

  #keep(key: string, tag: string, bytes: Buffer): void {
    const lru = this.#lru;
    if (!lru) return;
    lru.set(key, { bytes, tag });
    // `set` refuses an entry above maxEntrySize without calling dispose.
    if (!lru.has(key)) return;
    const keys = this.#byTag.get(tag);
    if (keys) keys.add(key);
    else this.#byTag.set(tag, new Set([key]));
  }

  #evictTag(tag: string): void {
    for (const fill of this.#filling.values()) if (fill.tag === tag) fill.invalidated = true;
    const keys = this.#byTag.get(tag);
    if (!keys) return;
    for (const key of [...keys]) this.#lru?.delete(key);
  }

  #untag(tag: string, key: string): void {
    const keys = this.#byTag.get(tag);
    if (!keys) return;
    keys.delete(key);
    if (keys.size === 0) this.#byTag.delete(tag);
  }
}

/**
 * Reads the stream from `open` into one buffer of `length` bytes; undefined
 * if it holds a different number of bytes (reading stops one byte past
 * `length`, so no more than that is ever held).
 */
async function readExactly(
  open: () => Promise<Readable>,
  length: number,
): Promise<Buffer | undefined> {
  const stream = await open();
  // Not from Node's shared pool: a small slice of it would keep its whole
  // 8 KiB slab alive, and the cache's byte count would be wrong.
  const bytes = Buffer.allocUnsafeSlow(length);
  let at = 0;
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      if (at + chunk.length > length) return undefined;
      chunk.copy(bytes, at);
      at += chunk.length;
    }
  } finally {
    stream.destroy();
  }
  return at === length ? bytes : undefined;
}
