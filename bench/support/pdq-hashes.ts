/** Random PDQ hashes for the PDQ benches (bench/pdq-bench.ts, bench/pdq-lookup-bench.ts). */
import { randomBytes } from "node:crypto";

/** 256 random bits as 64 hex digits. */
export function randomHash(): string {
  return randomBytes(32).toString("hex");
}

/** `hash` with `bits` distinct random bits flipped. */
export function flip(hash: string, bits: number): string {
  const bytes = Buffer.from(hash, "hex");
  const chosen = new Set<number>();
  while (chosen.size < bits) chosen.add(Math.floor(Math.random() * 256));
  for (const bit of chosen) bytes[bit >> 3]! ^= 1 << (bit & 7);
  return bytes.toString("hex");
}
