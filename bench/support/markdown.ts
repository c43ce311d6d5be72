/** Markdown tables for the report and for the standalone benches' output. */

/** A table: header cells, body rows, and which columns hold numbers (right-aligned). */
export interface Table {
  readonly header: readonly string[];
  readonly rows: ReadonlyArray<readonly string[]>;
  /** Indexes of right-aligned (numeric) columns. */
  readonly numeric?: readonly number[];
}

/** The table as Markdown lines. */
export function markdownTable(table: Table): string[] {
  const line = (cells: readonly string[]) => `| ${cells.join(" | ")} |`;
  const rule = table.header.map((_, i) => (table.numeric?.includes(i) ? "---:" : "---"));
  return [line(table.header), line(rule), ...table.rows.map(line)];
}

/** `1,000,000`. */
export function count(n: number): string {
  return n.toLocaleString("en-US");
}

/** Milliseconds with two decimals. */
export function ms(value: number): string {
  return `${value.toFixed(2)} ms`;
}

/** `0.53×`. */
export function times(ratio: number): string {
  return `${ratio.toFixed(2)}×`;
}

/** Bytes as MiB with one decimal. */
export function mib(bytes: number): string {
  return `${(bytes / 1024 ** 2).toFixed(1)} MiB`;
}

/** Seconds as s, ms or µs, whichever reads best. */
export function duration(seconds: number): string {
  if (seconds >= 1) return `${seconds.toFixed(2)} s`;
  if (seconds >= 1e-3) return `${(seconds * 1e3).toFixed(1)} ms`;
  return `${(seconds * 1e6).toFixed(0)} µs`;
}
