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
 * The reference's box along every column, fed one row at a time. The input
 * rows live in the box's own ring (`ring`, `window + BATCH` rows): the
 * producer writes the next rows straight into it at `inputOffset(k)` — up to
 * BATCH rows ahead, which never overwrites a row still to leave the window —
 * then calls `commit()` once per row in order, and `end()` after the last.
 * Output row `index` is written into `output(index)` (or skipped when
 * `writes[index]` is 0) and announced by `emit(index)`.
 */
class ColumnBox {
  readonly #cols: number;
  readonly #rows: number;
  readonly #window: number;
  readonly #half: number;
  readonly #slots: number;
  readonly #output: (index: number) => Float32Array;
  readonly #emit: (index: number) => void;
  /** `window + BATCH` rows of `cols` floats, window = ceil(rows / 128). */
  readonly ring: Float32Array;
  readonly #sums: Float32Array;
  /** Which output rows to compute and emit (undefined: all). */
  readonly #writes: Uint8Array | undefined;
  #count = 0;
  #added = 0;
  #emitted = 0;

  constructor(
    rows: number,
    cols: number,
    window: number,
    output: (index: number) => Float32Array,
    emit: (index: number) => void,
    writes?: Uint8Array,
  ) {
    this.#writes = writes;
    this.#rows = rows;
    this.#cols = cols;
    this.#window = window;
    this.#half = (window + 2) >> 1;
    this.#slots = window + BATCH;
    this.#output = output;
    this.#emit = emit;
    this.ring = new Float32Array(this.#slots * cols);
    this.#sums = new Float32Array(cols);
  }

  /** Where in `ring` the k-th row after the committed ones goes (k < BATCH). */
  inputOffset(k: number): number {
    return ((this.#added + k) % this.#slots) * this.#cols;
  }

  /** Takes in the next row, already written at `inputOffset(0)`. */
  commit(): void {
    const ri = this.#added++;
    const cols = this.#cols;
    const sums = this.#sums;
    const ring = this.ring;
    const enter = (ri % this.#slots) * cols;
    if (ri < this.#window) {
      // Phases 1 and 2: the window grows; nothing leaves it yet.
      for (let j = 0; j < cols; j++) sums[j] = (sums[j] as number) + (ring[enter + j] as number);
      this.#count++;
      if (ri >= this.#half - 1) this.#write();
      return;
    }
    // Phase 3: row ri enters, row ri - window leaves.
    const leave = ((ri - this.#window) % this.#slots) * cols;
    const index = this.#emitted++;
    if (this.#writes && this.#writes[index] === 0) {
      for (let j = 0; j < cols; j++) {
        sums[j] =
          fround((sums[j] as number) + (ring[enter + j] as number)) - (ring[leave + j] as number);
      }
      return;
    }
    // The same, dividing in the same pass (one walk over the row, not two).
    const out = this.#output(index);
    const count = this.#count;
    for (let j = 0; j < cols; j++) {
      const sum = fround(
        fround((sums[j] as number) + (ring[enter + j] as number)) - (ring[leave + j] as number),
      );
      sums[j] = sum;
      out[j] = sum / count;
    }
    this.#emit(index);
  }

  end(): void {
    // Phase 4: the window shrinks over the last rows (still in the ring).
    const cols = this.#cols;
    for (let li = this.#rows - this.#window; this.#emitted < this.#rows; li++) {
      const leave = (li % this.#slots) * cols;
      for (let j = 0; j < cols; j++) {
        this.#sums[j] = (this.#sums[j] as number) - (this.ring[leave + j] as number);
      }
      this.#count--;
      this.#write();
    }
  }

  #write(): void {
    const index = this.#emitted++;
    if (this.#writes && this.#writes[index] === 0) return;
    const out = this.#output(index);
    const sums = this.#sums;
    const count = this.#count;
    for (let j = 0; j < this.#cols; j++) out[j] = (sums[j] as number) / count;
    this.#emit(index);
  }
}

/**
 * Blur (two Jarosz passes) and decimate a `rows`×`cols` luma image, given one
 * row at a time — `pushRow`, or `rowBuffer()` filled in place then
 * `commitRow()` — into the 64×64 float32 buffer of `finish()`.
 * Memory: O(cols × (rows/128 + 12)) floats, whatever the image height.
 *
 * Data flow per batch of BATCH rows: luma rows (`rowBuffer`) → four-row row
 * box written straight into the first column box's ring → its output rows
 * straight into the second row box's batch → sampled four-row row box
 * written into the second column box's ring → the 64 sampled rows.
 */
export class PdqDownsampler {
  readonly #cols: number;
  readonly #rows: number;
  readonly #rowWindow: number;
  readonly #sampledCols: Int32Array;
  readonly #first: ColumnBox;
  readonly #second: ColumnBox;
  readonly #out = new Float32Array(64 * 64);
  readonly #lumaBatch: Float32Array;
  readonly #lumaViews: Float32Array[];
  readonly #firstBatch: Float32Array;
  readonly #firstViews: Float32Array[];
  readonly #sampledBatch = new Float32Array(BATCH * 64);
  readonly #secondOut = new Float32Array(64);
  #lumaRows = 0;
  #firstRows = 0;
  #pushed = 0;

  constructor(rows: number, cols: number) {
    this.#rows = rows;
    this.#cols = cols;
    this.#rowWindow = jaroszWindow(cols);
    const colWindow = jaroszWindow(rows);
    this.#lumaBatch = new Float32Array(BATCH * cols);
    this.#firstBatch = new Float32Array(BATCH * cols);
    const views = (b: Float32Array) =>
      Array.from({ length: BATCH }, (_, k) => b.subarray(k * cols, (k + 1) * cols));
    this.#lumaViews = views(this.#lumaBatch);
    this.#firstViews = views(this.#firstBatch);
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
      () => this.#secondOut,
      (index) => {
        for (const i of targets.get(index) ?? []) this.#out.set(this.#secondOut, i * 64);
      },
      wanted,
    );
    this.#first = new ColumnBox(
      rows,
      cols,
      colWindow,
      () => this.#firstViews[this.#firstRows] as Float32Array,
      () => {
        if (++this.#firstRows === BATCH) this.#flushFirst();
      },
    );
  }

  /** The buffer to fill with the next luma row (`cols` values), then `commitRow()`. */
  rowBuffer(): Float32Array {
    return this.#lumaViews[this.#lumaRows] as Float32Array;
  }

  /** Takes in the row written into `rowBuffer()`. */
  commitRow(): void {
    if (this.#pushed >= this.#rows) throw new RangeError("PdqDownsampler: too many rows");
    this.#pushed++;
    if (++this.#lumaRows === BATCH) this.#flushLuma();
  }

  /** Feeds the next luma row (`cols` values; not modified). */
  pushRow(row: Float32Array): void {
    if (row.length !== this.#cols) throw new RangeError("PdqDownsampler: wrong row length");
    this.rowBuffer().set(row);
    this.commitRow();
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

  /** First row box over the waiting luma rows, into the first column box's ring. */
  #flushLuma(): void {
    const cols = this.#cols;
    const n = this.#lumaRows;
    const first = this.#first;
    if (n === BATCH) {
      boxFourRows(
        this.#lumaBatch,
        first.ring,
        cols,
        this.#rowWindow,
        first.inputOffset(0),
        first.inputOffset(1),
        first.inputOffset(2),
        first.inputOffset(3),
      );
    } else {
      for (let k = 0; k < n; k++) {
        const at = first.inputOffset(k);
        const output = first.ring.subarray(at, at + cols);
        box1D(this.#lumaViews[k] as Float32Array, output, cols, this.#rowWindow);
      }
    }
    this.#lumaRows = 0;
    for (let k = 0; k < n; k++) first.commit();
  }

  /** Second row box (sampled columns only) over the waiting rows, into the second column box. */
  #flushFirst(): void {
    const cols = this.#cols;
    const n = this.#firstRows;
    const second = this.#second;
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
        const output = this.#sampledBatch.subarray(k * 64, (k + 1) * 64);
        box1DSampled(
          this.#firstViews[k] as Float32Array,
          output,
          cols,
          this.#rowWindow,
          this.#sampledCols,
        );
      }
    }
    this.#firstRows = 0;
    for (let k = 0; k < n; k++) {
      second.ring.set(this.#sampledBatch.subarray(k * 64, (k + 1) * 64), second.inputOffset(0));
      second.commit();
    }
  }
}

/** The reference's point sample: floor((i + 0.5) × size / 64), in float64. */
function decimationIndex(i: number, size: number): number {
  return Math.floor(((i + 0.5) * size) / 64);
}
