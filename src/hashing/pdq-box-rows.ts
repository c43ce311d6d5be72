/**
 * The reference's 1-D box filter (`box1DFloat`, media-gaps.md §5.1 step 3)
 * along rows: one row, or four rows at once.
 *
 * Why four at once: the running sum is a chain of dependent float32
 * operations (add, round, subtract, round), so one row runs at the latency of
 * that chain, not at the throughput of the CPU. Four independent chains
 * interleaved in one loop keep the CPU busy; each row still sees exactly its
 * own sequence of operations, so the results are bit-identical.
 */

const fround = Math.fround;

/**
 * The reference's 1-D box filter (`box1DFloat`) over a contiguous vector:
 * a centred running mean whose window shrinks at both ends, in four phases.
 */
export function box1D(
  input: Float32Array,
  output: Float32Array,
  length: number,
  window: number,
): void {
  const half = (window + 2) >> 1;
  let sum = 0;
  let count = 0;
  let ri = 0;
  let li = 0;
  let oi = 0;
  for (let t = 0; t < half - 1; t++) {
    sum = fround(sum + (input[ri++] as number));
    count++;
  }
  for (let t = 0; t < window - half + 1; t++) {
    sum = fround(sum + (input[ri++] as number));
    count++;
    output[oi++] = sum / count;
  }
  for (let t = 0; t < length - window; t++) {
    sum = fround(sum + (input[ri++] as number));
    sum = fround(sum - (input[li++] as number));
    output[oi++] = sum / count;
  }
  for (let t = 0; t < half - 1; t++) {
    sum = fround(sum - (input[li++] as number));
    count--;
    output[oi++] = sum / count;
  }
}

/**
 * `box1D`, but writing only the outputs at `samples` (ascending, repeats
 * allowed) into `output[0..samples.length)`. The running sum still visits
 * every input, so each written value is bit-identical to `box1D`'s.
 */
export function box1DSampled(
  input: Float32Array,
  output: Float32Array,
  length: number,
  window: number,
  samples: Int32Array,
): void {
  const half = (window + 2) >> 1;
  const last = samples.length;
  let sum = 0;
  let count = 0;
  let ri = 0;
  let li = 0;
  let oi = 0;
  let s = 0;
  // No closure here: captured, mutated locals would slow the loop down.
  for (let t = 0; t < half - 1; t++) {
    sum = fround(sum + (input[ri++] as number));
    count++;
  }
  for (let t = 0; t < window - half + 1; t++) {
    sum = fround(sum + (input[ri++] as number));
    count++;
    while (s < last && samples[s] === oi) output[s++] = sum / count;
    oi++;
  }
  for (let t = 0; t < length - window; t++) {
    sum = fround(sum + (input[ri++] as number));
    sum = fround(sum - (input[li++] as number));
    while (s < last && samples[s] === oi) output[s++] = sum / count;
    oi++;
  }
  for (let t = 0; t < half - 1; t++) {
    sum = fround(sum - (input[li++] as number));
    count--;
    while (s < last && samples[s] === oi) output[s++] = sum / count;
    oi++;
  }
}

/**
 * `box1D` of four rows stored one after another in `input` (4 × length);
 * row r's output goes to `output` from offset `or` (the rows of a column
 * box's ring, pdq-downsample.ts, need not be adjacent).
 */
export function boxFourRows(
  input: Float32Array,
  output: Float32Array,
  length: number,
  window: number,
  o0: number,
  o1: number,
  o2: number,
  o3: number,
): void {
  const half = (window + 2) >> 1;
  const l1 = length;
  const l2 = 2 * length;
  const l3 = 3 * length;
  let s0 = 0;
  let s1 = 0;
  let s2 = 0;
  let s3 = 0;
  let count = 0;
  let ri = 0;
  let li = 0;
  let oi = 0;
  for (let t = 0; t < half - 1; t++, ri++) {
    s0 = fround(s0 + (input[ri] as number));
    s1 = fround(s1 + (input[ri + l1] as number));
    s2 = fround(s2 + (input[ri + l2] as number));
    s3 = fround(s3 + (input[ri + l3] as number));
    count++;
  }
  for (let t = 0; t < window - half + 1; t++, ri++, oi++) {
    s0 = fround(s0 + (input[ri] as number));
    s1 = fround(s1 + (input[ri + l1] as number));
    s2 = fround(s2 + (input[ri + l2] as number));
    s3 = fround(s3 + (input[ri + l3] as number));
    count++;
    output[o0 + oi] = s0 / count;
    output[o1 + oi] = s1 / count;
    output[o2 + oi] = s2 / count;
    output[o3 + oi] = s3 / count;
  }
  for (let t = 0; t < length - window; t++, ri++, li++, oi++) {
    s0 = fround(fround(s0 + (input[ri] as number)) - (input[li] as number));
    s1 = fround(fround(s1 + (input[ri + l1] as number)) - (input[li + l1] as number));
    s2 = fround(fround(s2 + (input[ri + l2] as number)) - (input[li + l2] as number));
    s3 = fround(fround(s3 + (input[ri + l3] as number)) - (input[li + l3] as number));
    output[o0 + oi] = s0 / count;
    output[o1 + oi] = s1 / count;
    output[o2 + oi] = s2 / count;
    output[o3 + oi] = s3 / count;
  }
  for (let t = 0; t < half - 1; t++, li++, oi++) {
    s0 = fround(s0 - (input[li] as number));
    s1 = fround(s1 - (input[li + l1] as number));
    s2 = fround(s2 - (input[li + l2] as number));
    s3 = fround(s3 - (input[li + l3] as number));
    count--;
    output[o0 + oi] = s0 / count;
    output[o1 + oi] = s1 / count;
    output[o2 + oi] = s2 / count;
    output[o3 + oi] = s3 / count;
  }
}

/**
 * `box1DSampled` of four rows (4 × length in `input`), row r's samples
 * written to `output[r × samples.length + s]`.
 */
export function boxFourRowsSampled(
  input: Float32Array,
  output: Float32Array,
  length: number,
  window: number,
  samples: Int32Array,
): void {
  const half = (window + 2) >> 1;
  const last = samples.length;
  const l1 = length;
  const l2 = 2 * length;
  const l3 = 3 * length;
  let s0 = 0;
  let s1 = 0;
  let s2 = 0;
  let s3 = 0;
  let count = 0;
  let ri = 0;
  let li = 0;
  let oi = 0;
  let s = 0;
  for (let t = 0; t < half - 1; t++, ri++) {
    s0 = fround(s0 + (input[ri] as number));
    s1 = fround(s1 + (input[ri + l1] as number));
    s2 = fround(s2 + (input[ri + l2] as number));
    s3 = fround(s3 + (input[ri + l3] as number));
    count++;
  }
  for (let t = 0; t < window - half + 1; t++, ri++, oi++) {
    s0 = fround(s0 + (input[ri] as number));
    s1 = fround(s1 + (input[ri + l1] as number));
    s2 = fround(s2 + (input[ri + l2] as number));
    s3 = fround(s3 + (input[ri + l3] as number));
    count++;
    for (; s < last && samples[s] === oi; s++) {
      output[s] = s0 / count;
      output[s + last] = s1 / count;
      output[s + 2 * last] = s2 / count;
      output[s + 3 * last] = s3 / count;
    }
  }
  for (let t = 0; t < length - window; t++, ri++, li++, oi++) {
    s0 = fround(fround(s0 + (input[ri] as number)) - (input[li] as number));
    s1 = fround(fround(s1 + (input[ri + l1] as number)) - (input[li + l1] as number));
    s2 = fround(fround(s2 + (input[ri + l2] as number)) - (input[li + l2] as number));
    s3 = fround(fround(s3 + (input[ri + l3] as number)) - (input[li + l3] as number));
    for (; s < last && samples[s] === oi; s++) {
      output[s] = s0 / count;
      output[s + last] = s1 / count;
      output[s + 2 * last] = s2 / count;
      output[s + 3 * last] = s3 / count;
    }
  }
  for (let t = 0; t < half - 1; t++, li++, oi++) {
    s0 = fround(s0 - (input[li] as number));
    s1 = fround(s1 - (input[li + l1] as number));
    s2 = fround(s2 - (input[li + l2] as number));
    s3 = fround(s3 - (input[li + l3] as number));
    count--;
    for (; s < last && samples[s] === oi; s++) {
      output[s] = s0 / count;
      output[s + last] = s1 / count;
      output[s + 2 * last] = s2 / count;
      output[s + 3 * last] = s3 / count;
    }
  }
}
