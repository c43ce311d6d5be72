/**
 * PDQ's blur and decimation (media-gaps.md §5.1 steps 3–4), row by row.
 *
 * Design note: the reference blurs a full-resolution float luma image in two
 * whole-image buffers (two passes of "box along every row, then box along
 * every column", with Jarosz window sizes), then point-samples 64×64 values.
 * Here the same arithmetic runs as a pipeline of streaming stages, so memory
 * is a few rows, not the image:
 *
 *   luma row → row box → column box → row box → column box → keep the row if
 *   it is one of the 64 sampled rows, at the 64 sampled columns.
 *
 * Only the 64 sampled columns of the last column box are ever read, and a
 * column box treats each column on its own, so the last column box runs on
 * those 64 columns alone, and the row box before it keeps its running sum
 * over the whole row but divides and stores only at those 64 columns.
 *
 * A column box keeps, per column, the running sum the reference keeps, fed
 * one row at a time, plus a ring of the last `window` input rows for the
 * subtractions. Every column sees exactly the reference's sequence of float32
 * operations (add the entering value, then subtract the leaving one, then
 * divide by the current window), so the result is bit-identical to the C++
 * reference, which works in float32: every intermediate is rounded with
 * `Math.fround` or by a store into a Float32Array (an IEEE float32 add,
 * subtract, multiply or divide computed in float64 and rounded once is the
 * correctly rounded float32 result).
 */

import { box1D, box1DSampled, boxFourRows, boxFourRowsSampled } from "./pdq-box-rows.js";

const fround = Math.fround;
const BATCH = 4;

/** The reference's Jarosz window: ceil(dimension / 128) (C++ `computeJaroszFilterWindowSize`). */
function jaroszWindow(dimension: number): number {
  return Math.floor((dimension + 2 * 64 - 1) / (2 * 64));
}

/**
 * The reference's box along every column, fed one row at a time: `push` each
 * input row in order, then `end`; output rows reach `emit` in order (the
 * array passed to `emit` is reused, so copy what you keep).
 */
class ColumnBox {
  readonly #cols: number;
  readonly #rows: number;
  readonly #window: number;
  readonly #half: number;
  readonly #emit: (row: Float32Array, index: number) => void;
  // Bound: `window` rows of `cols` floats, window = ceil(rows / 128).
  readonly #ring: Float32Array;
  readonly #sums: Float32Array;
  readonly #out: Float32Array;
  #count = 0;
  #added = 0;
  #emitted = 0;

  /** `writes`: which output rows to compute and emit (undefined: all). */
  readonly #writes: Uint8Array | undefined;

  constructor(
    rows: number,
    cols: number,
    window: number,
    emit: (row: Float32Array, index: number) => void,
    writes?: Uint8Array,
  ) {
    this.#writes = writes;
    this.#rows = rows;
    this.#cols = cols;
    this.#window = window;
    this.#half = (window + 2) >> 1;
    this.#emit = emit;
    this.#ring = new Float32Array(window * cols);
    this.#sums = new Float32Array(cols);
    this.#out = new Float32Array(cols);
  }

  push(row: Float32Array): void {
    const ri = this.#added++;
    const cols = this.#cols;
    const sums = this.#sums;
    const ring = this.#ring;
    const slot = (ri % this.#window) * cols;
    if (ri < this.#window) {
      // Phases 1 and 2: the window grows; nothing leaves it yet.
      for (let j = 0; j < cols; j++) {
        const x = row[j] as number;
        sums[j] = (sums[j] as number) + x;
        ring[slot + j] = x;
      }
      this.#count++;
      if (ri >= this.#half - 1) this.#write();
      return;
    }
    // Phase 3: row ri enters, row ri - window (held in the same ring slot) leaves.
    const index = this.#emitted++;
    if (this.#writes && this.#writes[index] === 0) {
      for (let j = 0; j < cols; j++) {
        const x = row[j] as number;
        sums[j] = fround((sums[j] as number) + x) - (ring[slot + j] as number);
        ring[slot + j] = x;
      }
      return;
    }
    // The same, dividing in the same pass (one walk over the row, not two).
    const out = this.#out;
    const count = this.#count;
    for (let j = 0; j < cols; j++) {
      const x = row[j] as number;
      const sum = fround(fround((sums[j] as number) + x) - (ring[slot + j] as number));
      sums[j] = sum;
      ring[slot + j] = x;
      out[j] = sum / count;
    }
    this.#emit(out, index);
  }

  end(): void {
    // Phase 4: the window shrinks over the last rows.
    const cols = this.#cols;
    for (let li = this.#rows - this.#window; this.#emitted < this.#rows; li++) {
      const slot = (li % this.#window) * cols;
      for (let j = 0; j < cols; j++) {
        this.#sums[j] = (this.#sums[j] as number) - (this.#ring[slot + j] as number);
      }
      this.#count--;
      this.#write();
    }
  }

  #write(): void {
    if (this.#writes && this.#writes[this.#emitted] === 0) {
      this.#emitted++;
      return;
    }
    const out = this.#out;
    const sums = this.#sums;
    const count = this.#count;
    for (let j = 0; j < this.#cols; j++) out[j] = (sums[j] as number) / count;
    this.#emit(out, this.#emitted++);
  }
}

/**
 * Blur (two Jarosz passes) and decimate a `rows`×`cols` luma image, given one
 * row at a time through `pushRow`,
 * into the 64×64 float32 buffer of `finish()`. Memory: O(cols × (rows/128 + 4))
 * floats, whatever the image height.
 */
export class PdqDownsampler {
  readonly #cols: number;
  readonly #rows: number;
  readonly #rowWindow: number;
  readonly #sampledCols: Int32Array;
  readonly #first: ColumnBox;
  readonly #second: ColumnBox;
  readonly #out = new Float32Array(64 * 64);
  // Rows wait in batches of BATCH for the four-row kernels (pdq-box-rows.ts).
  readonly #lumaBatch: Float32Array;
  readonly #boxedBatch: Float32Array;
  readonly #firstBatch: Float32Array;
  readonly #sampledBatch = new Float32Array(BATCH * 64);
  #lumaRows = 0;
  #firstRows = 0;
  #pushed = 0;

  constructor(rows: number, cols: number) {
    this.#rows = rows;
    this.#cols = cols;
    this.#rowWindow = jaroszWindow(cols);
    const colWindow = jaroszWindow(rows);
    this.#lumaBatch = new Float32Array(BATCH * cols);
    this.#boxedBatch = new Float32Array(BATCH * cols);
    this.#firstBatch = new Float32Array(BATCH * cols);
    this.#sampledCols = Int32Array.from({ length: 64 }, (_, j) => decimationIndex(j, cols));
    // Which of the 64 output rows each input row feeds (several when rows < 64).
    const targets = new Map<number, number[]>();
    const wanted = new Uint8Array(rows);
    for (let i = 0; i < 64; i++) {
      const at = decimationIndex(i, rows);
      targets.set(at, [...(targets.get(at) ?? []), i]);
      wanted[at] = 1;
    }
    // Only the 64 sampled columns of the second pass are ever read, and a
    // column box treats columns independently: the second column box runs
    // on those 64 alone, and the second row box only sums the rest.
    this.#second = new ColumnBox(
      rows,
      64,
      colWindow,
      (row, index) => {
        for (const i of targets.get(index) ?? []) this.#out.set(row, i * 64);
      },
      wanted,
    );
    this.#first = new ColumnBox(rows, cols, colWindow, (row) => {
      this.#firstBatch.set(row, this.#firstRows * this.#cols);
      if (++this.#firstRows === BATCH) this.#flushFirst();
    });
  }

  /** Feeds the next luma row (`cols` values; not modified). */
  pushRow(row: Float32Array): void {
    if (row.length !== this.#cols || this.#pushed >= this.#rows) {
      throw new RangeError("PdqDownsampler: wrong row length or too many rows");
    }
    this.#pushed++;
    this.#lumaBatch.set(row, this.#lumaRows * this.#cols);
    if (++this.#lumaRows === BATCH) this.#flushLuma();
  }

  /** The blurred, decimated 64×64 image (row-major), once every row is in. */
  finish(): Float32Array {
    if (this.#pushed !== this.#rows) throw new RangeError("PdqDownsampler: rows missing");
    this.#flushLuma();
    this.#first.end();
    this.#flushFirst();
    this.#second.end();
    return this.#out;
  }

  /** First row box over the waiting luma rows, then into the first column box. */
  #flushLuma(): void {
    const cols = this.#cols;
    const n = this.#lumaRows;
    if (n === BATCH) {
      boxFourRows(this.#lumaBatch, this.#boxedBatch, cols, this.#rowWindow);
    } else {
      for (let k = 0; k < n; k++) {
        const rows = (b: Float32Array) => b.subarray(k * cols, (k + 1) * cols);
        box1D(rows(this.#lumaBatch), rows(this.#boxedBatch), cols, this.#rowWindow);
      }
    }
    this.#lumaRows = 0;
    for (let k = 0; k < n; k++)
      this.#first.push(this.#boxedBatch.subarray(k * cols, (k + 1) * cols));
  }

  /** Second row box (sampled columns only) over the waiting rows, then into the second column box. */
  #flushFirst(): void {
    const cols = this.#cols;
    const n = this.#firstRows;
    if (n === BATCH) {
      boxFourRowsSampled(
        this.#firstBatch,
        this.#sampledBatch,
        cols,
        this.#rowWindow,
        this.#sampledCols,
      );
    } else {
      for (let k = 0; k < n; k++) {
        const input = this.#firstBatch.subarray(k * cols, (k + 1) * cols);
        const output = this.#sampledBatch.subarray(k * 64, (k + 1) * 64);
        box1DSampled(input, output, cols, this.#rowWindow, this.#sampledCols);
      }
    }
    this.#firstRows = 0;
    for (let k = 0; k < n; k++)
      this.#second.push(this.#sampledBatch.subarray(k * 64, (k + 1) * 64));
  }
}

/** The reference's point sample: floor((i + 0.5) × size / 64), in float64. */
function decimationIndex(i: number, size: number): number {
  return Math.floor(((i + 0.5) * size) / 64);
}
