/**
 * The streaming blur and decimation (pdq-downsample.ts) against a literal
 * whole-image version of the reference's steps (two full float32 buffers:
 * box along every row, then along every column, twice; then point-sample),
 * bit for bit, on random non-integer luma of many shapes — odd sizes, sizes
 * under 64, tall and wide strips — where the synthetic vectors (integer luma,
 * sizes that are multiples of 4) do not reach.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { PdqDownsampler } from "../src/hashing/pdq-downsample.js";

const f = Math.fround;

/** The reference's 1-D box (four phases, add-then-subtract running sum), strided. */
function box(
  input: Float32Array,
  output: Float32Array,
  start: number,
  n: number,
  stride: number,
  w: number,
) {
  const half = Math.floor((w + 2) / 2);
  let sum = 0;
  let size = 0;
  let ri = start;
  let li = start;
  let oi = start;
  for (let t = 0; t < half - 1; t++, ri += stride) {
    sum = f(sum + (input[ri] as number));
    size++;
  }
  for (let t = 0; t < w - half + 1; t++, ri += stride, oi += stride) {
    sum = f(sum + (input[ri] as number));
    size++;
    output[oi] = f(sum / size);
  }
  for (let t = 0; t < n - w; t++, ri += stride, li += stride, oi += stride) {
    sum = f(sum + (input[ri] as number));
    sum = f(sum - (input[li] as number));
    output[oi] = f(sum / size);
  }
  for (let t = 0; t < half - 1; t++, li += stride, oi += stride) {
    sum = f(sum - (input[li] as number));
    size--;
    output[oi] = f(sum / size);
  }
}

function wholeImage(luma: Float32Array, rows: number, cols: number): Float32Array {
  const a = Float32Array.from(luma);
  const b = new Float32Array(rows * cols);
  const wr = Math.floor((cols + 127) / 128);
  const wc = Math.floor((rows + 127) / 128);
  for (let pass = 0; pass < 2; pass++) {
    for (let i = 0; i < rows; i++) box(a, b, i * cols, cols, 1, wr);
    for (let j = 0; j < cols; j++) box(b, a, j, rows, cols, wc);
  }
  const out = new Float32Array(64 * 64);
  for (let i = 0; i < 64; i++) {
    const ini = Math.floor(((i + 0.5) * rows) / 64);
    for (let j = 0; j < 64; j++)
      out[i * 64 + j] = a[ini * cols + Math.floor(((j + 0.5) * cols) / 64)] as number;
  }
  return out;
}

function streamed(luma: Float32Array, rows: number, cols: number): Float32Array {
  const downsampler = new PdqDownsampler(rows, cols);
  for (let i = 0; i < rows; i++) downsampler.pushRow(luma.slice(i * cols, (i + 1) * cols));
  return downsampler.finish();
}

describe("PdqDownsampler equals the whole-image reference steps, bit for bit", () => {
  let seed = 7;
  const random = () => {
    seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
    return seed / 2 ** 32;
  };
  const shapes: Array<[number, number]> = [
    [5, 5],
    [5, 9],
    [7, 5],
    [63, 65],
    [64, 64],
    [129, 131],
    [201, 299],
    [257, 130],
    [383, 517],
    [6, 700],
    [700, 6],
    [1031, 37],
  ];
  for (const [rows, cols] of shapes) {
    it(`${rows}x${cols}`, () => {
      const luma = Float32Array.from({ length: rows * cols }, () => random() * 255);
      const expected = wholeImage(luma, rows, cols);
      const actual = streamed(luma, rows, cols);
      assert.deepEqual(new Uint32Array(actual.buffer), new Uint32Array(expected.buffer));
    });
  }
});
