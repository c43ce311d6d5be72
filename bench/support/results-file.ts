/**
 * RESULTS.md is written by several benches: `npm run bench` writes the main
 * report, and the benches that run on their own (`bench:hot`, `bench:import`,
 * `bench:preview`) own one `## ` section each. These helpers let each writer
 * replace its own part and keep the others'.
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";

/** Replaces (or appends) the section that starts with `heading` in `file`, leaving the rest. */
export function writeSection(file: string, heading: string, lines: readonly string[]): void {
  const text = existsSync(file) ? readFileSync(file, "utf8") : "";
  const section = `${heading}\n\n${lines.join("\n")}\n`;
  const start = text.indexOf(heading);
  if (start === -1) {
    writeFileSync(file, text.trim() === "" ? section : `${text.trimEnd()}\n\n${section}`);
    return;
  }
  const next = text.indexOf("\n## ", start + heading.length);
  writeFileSync(file, text.slice(0, start) + section + (next === -1 ? "" : text.slice(next + 1)));
}

/** The `## ` sections of a Markdown text, heading line first, in order. */
export function sectionsOf(text: string): { heading: string; body: string }[] {
  const parts = `\n${text}`.split("\n## ").slice(1);
  return parts.map((part) => {
    const newline = part.indexOf("\n");
    const heading = `## ${newline === -1 ? part : part.slice(0, newline)}`;
    return { heading, body: `## ${part.trimEnd()}\n` };
  });
}

/**
 * `report` followed by every section of the file's previous text whose
 * heading `report` does not have (the standalone benches' sections), so a
 * full run does not erase them.
 */
export function withKeptSections(report: string, previousText: string): string {
  const own = new Set(sectionsOf(report).map((section) => section.heading));
  const kept = sectionsOf(previousText).filter((section) => !own.has(section.heading));
  if (kept.length === 0) return report;
  return `${report.trimEnd()}\n\n${kept.map((section) => section.body).join("\n")}`;
}
