/**
 * Seeded randomness for tests, so a failure replays with its seed.
 */

/** mulberry32: a small seeded PRNG returning numbers in [0, 1). */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A random 256-bit PDQ hash as 64 hex digits. */
export function randomHash(rand: () => number): string {
  let hex = "";
  for (let k = 0; k < 64; k++) hex += Math.floor(rand() * 16).toString(16);
  return hex;
}
