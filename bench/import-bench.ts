/**
 * `mxcd import synapse` rate (docs/import.md): a bulk Synapse fixture
 * (test/support/synapse-bulk-fixture.ts, 100,000 rows by default, SQLite
 * source) imported by the real CLI from `dist/`, against two physical
 * references on the very same media store tree in the same run:
 * - `cp -r` of the tree (what any import that touches every file pays at
 *   least: a walk, an open and a read of every file);
 * - `sha256sum` over every file (`find -print0 | xargs -0`), the hashing
 *   limit a copying, verifying import would meet.
 *
 * Each round runs every leg once, in a rotating order so drift in the
 * machine's load affects them alike; every leg of every round starts from a
 * fresh mxcd database (SQLite, and PostgreSQL when its binaries are
 * installed). The import's report is checked against the fixture's counts,
 * so a broken import can never pass for a fast one. The page cache is warm
 * for every leg (the fixture was just written; nothing drops caches).
 *
 * Modes: MODES lists the import modes. `--reference` always runs; `--copy`
 * (files streamed into mxcd's own store) runs only when the CLI's
 * `import synapse --help` lists it, so this bench picks it up as soon as
 * that flag exists.
 */
import { spawn } from "node:child_process";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { loadavg } from "node:os";
import { join } from "node:path";
import { IMPORT_KINDS } from "../src/importer/import-report.js";
import { findPostgresBin } from "../test/support/postgres-cluster.js";
import { writeBulkSynapseFixture } from "../test/support/synapse-bulk-fixture.js";
import type { Cleanup } from "./support/cleanup.js";
import { tempDir } from "./support/files.js";
import { isMainModule, runMain } from "./support/main.js";
import { count, markdownTable, times } from "./support/markdown.js";
import { SharedPostgres } from "./support/postgres.js";
import { OutputTail, runCommand } from "./support/processes.js";

/** An import mode: its flags, and whether mxcd's store is a separate folder it fills. */
interface ImportMode {
  readonly name: string;
  readonly flags: readonly string[];
  /** True: `media_store` is a fresh folder the import copies into; false: Synapse's folder. */
  readonly copies: boolean;
}

/** Every mode the bench knows; those the CLI does not accept are skipped (and said so). */
export const MODES: readonly ImportMode[] = [
  { name: "reference", flags: ["--reference"], copies: false },
  { name: "copy", flags: ["--copy"], copies: true },
];

/** One timed leg: a reference tool, or an import mode on an engine. */
interface Leg {
  readonly name: string;
  run(round: number): Promise<number>;
}

export interface ImportBenchSettings {
  readonly rows: number;
  readonly rounds: number;
}

export interface ImportBenchResult {
  readonly settings: ImportBenchSettings;
  readonly rows: number;
  readonly files: number;
  readonly fileBytes: number;
  /** Seconds per leg, one per round. */
  readonly seconds: ReadonlyMap<string, readonly number[]>;
  /** Modes the CLI did not accept. */
  readonly skippedModes: readonly string[];
}

/** Builds the fixture, then runs every leg `rounds` times. */
export async function benchImport(
  settings: ImportBenchSettings,
  cleanup: Cleanup,
): Promise<ImportBenchResult> {
  // MXCD_BENCH_IMPORT_CLI: another build's CLI, for an A/B (its node_modules must resolve).
  const cli =
    process.env.MXCD_BENCH_IMPORT_CLI ??
    join(import.meta.dirname, "..", "dist", "src", "cli", "main.js");
  const dir = tempDir(cleanup, "mxcd-import-bench-");
  const sqlite = join(dir, "homeserver.db");
  console.error(`import bench: writing a ${count(settings.rows)}-row fixture…`);
  const fixture = await writeBulkSynapseFixture(dir, { sqlite }, settings.rows);
  const help = await runCommand(process.execPath, [cli, "import", "synapse", "--help"]);
  if (help.code !== 0) throw new Error(`mxcd import synapse --help failed: ${help.stderr}`);
  // MXCD_BENCH_IMPORT_MODES: a comma list of the modes to run (all by default).
  const chosen = process.env.MXCD_BENCH_IMPORT_MODES?.split(",");
  const wanted = MODES.filter((m) => !chosen || chosen.includes(m.name));
  const modes = wanted.filter((m) => m.flags.every((f) => help.stdout.includes(f)));
  const skippedModes = wanted.filter((m) => !modes.includes(m)).map((m) => m.name);
  const engines = ["sqlite", ...(findPostgresBin() ? ["postgres"] : [])] as const;
  const postgres = new SharedPostgres(cleanup);
  // A copying import's table has a "mismatched" column too (none in this fixture).
  const expected = (copies: boolean) =>
    IMPORT_KINDS.map((k) => {
      const c = fixture.expected[k];
      return `${k} ${c.imported} 0 ${c.skipped} ${c.missing}${copies ? " 0" : ""}`;
    });

  const legs: Leg[] = [
    {
      name: "cp -r",
      run: async (round) => {
        const target = join(dir, `cp-${round}`);
        const result = await runCommand("cp", ["-r", fixture.mediaStore, target]);
        rmSync(target, { recursive: true, force: true });
        if (result.code !== 0) throw new Error(`cp -r failed: ${result.stderr}`);
        return result.seconds;
      },
    },
    {
      name: "sha256sum",
      run: async () => {
        const result = await runCommand("sh", [
          "-c",
          'find "$1" -type f -print0 | xargs -0 sha256sum > /dev/null',
          "sh",
          fixture.mediaStore,
        ]);
        if (result.code !== 0) throw new Error(`sha256sum failed: ${result.stderr}`);
        return result.seconds;
      },
    },
  ];
  for (const mode of modes) {
    for (const engine of engines) {
      const name = `import ${mode.flags.join(" ")} (${engine})`;
      legs.push({
        name,
        run: async (round) => {
          const runDir = join(dir, `${mode.name}-${engine}-${round}`);
          const store = mode.copies ? join(runDir, "store") : fixture.mediaStore;
          const database =
            engine === "sqlite"
              ? { engine, path: join(runDir, "mxcd.sqlite") }
              : {
                  engine,
                  url: await (await postgres.get()).createDatabase(
                    `mxcd_import_${mode.name}_${round}`,
                  ),
                };
          await runCommand("mkdir", ["-p", runDir]);
          writeFileSync(
            join(runDir, "mxcd.yaml"),
            JSON.stringify({
              server_name: "test.local",
              database,
              media_store: { engine: "filesystem", path: store },
              log_level: "warn",
            }),
          );
          const result = await runFull(
            process.execPath,
            [
              cli,
              "import",
              "synapse",
              "--sqlite",
              sqlite,
              "--media-store",
              fixture.mediaStore,
              ...mode.flags,
            ],
            { cwd: runDir },
          );
          // 1: the fixture has missing files on purpose. The counts must be the fixture's.
          const report = result.stdout
            .split("\n")
            .map((line) => line.trim().split(/\s+/).join(" "))
            .filter((line) => IMPORT_KINDS.some((k) => line.startsWith(`${k} `)));
          if (result.code !== 1 || report.join("\n") !== expected(mode.copies).join("\n")) {
            throw new Error(
              `${name} exited ${result.code}, report:\n${result.stdout}\n${result.stderr}`,
            );
          }
          rmSync(runDir, { recursive: true, force: true });
          return result.seconds;
        },
      });
    }
  }

  const seconds = new Map<string, number[]>(legs.map((l) => [l.name, []]));
  for (let round = 0; round < settings.rounds; round++) {
    const order = legs.map((_, i) => legs[(i + round) % legs.length]!);
    for (const leg of order) {
      const s = await leg.run(round);
      seconds.get(leg.name)!.push(s);
      console.error(`round ${round + 1}: ${leg.name} ${s.toFixed(2)} s`);
    }
  }
  return {
    settings,
    rows: fixture.rows,
    files: fixture.files,
    fileBytes: fixture.fileBytes,
    seconds,
    skippedModes,
  };
}

/**
 * Runs a command to completion keeping all its standard output (the
 * import's report table comes first, before up to 1,000 problem lines,
 * so runCommand's tail would lose it) and the tail of its standard error.
 */
function runFull(
  command: string,
  args: readonly string[],
  options: { cwd: string },
): Promise<{ code: number | null; stdout: string; stderr: string; seconds: number }> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(command, args, { cwd: options.cwd, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      stdout += chunk;
    });
    const stderr = new OutputTail(child.stderr);
    child.once("error", reject);
    child.once("close", (code) =>
      resolve({
        code,
        stdout,
        stderr: stderr.text(),
        seconds: (performance.now() - started) / 1000,
      }),
    );
  });
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

/** The report's section: rates, and ratios to both references per round. */
export function importSection(result: ImportBenchResult): string[] {
  const mib = result.fileBytes / 1024 ** 2;
  const cp = result.seconds.get("cp -r")!;
  const sha = result.seconds.get("sha256sum")!;
  const rows = [...result.seconds].map(([name, s]) => {
    const m = median(s);
    // Ratios per round (same round, same load), then their median and range.
    const toCp = s.map((v, i) => cp[i]! / v);
    const toSha = s.map((v, i) => sha[i]! / v);
    const spread = (r: number[]) =>
      `${times(median(r))} (${times(Math.min(...r))} – ${times(Math.max(...r))})`;
    return [
      name,
      `${m.toFixed(2)} s (${Math.min(...s).toFixed(2)} – ${Math.max(...s).toFixed(2)})`,
      count(Math.round(result.rows / m)),
      (mib / m).toFixed(1),
      spread(toCp),
      spread(toSha),
    ];
  });
  return [
    ...markdownTable({
      header: [
        "leg",
        "seconds, median (min – max)",
        "rows/s",
        "MiB/s",
        "rate ÷ cp -r, median (range)",
        "rate ÷ sha256sum, median (range)",
      ],
      rows,
      numeric: [1, 2, 3, 4, 5],
    }),
    "",
    `${count(result.rows)} rows (70 % local media, 15 % local thumbnails, 10 % remote media, 5 % remote thumbnails), ` +
      `${count(result.files)} files, ${mib.toFixed(1)} MiB (60–139 bytes each); SQLite source; ` +
      `${result.settings.rounds} rounds in rotating order, each import into a fresh mxcd database, ` +
      "the real CLI from `dist/` (process start-up included). A ratio is the leg's rate ÷ the reference's rate in the same round " +
      "(above 1×: faster than the reference). Rows/s counts the rows of all four tables; MiB/s the bytes of the files the rows name. " +
      "Warm page cache for every leg.",
    ...(result.skippedModes.length
      ? [
          "",
          `Not run: ${result.skippedModes.map((m) => `\`--${m}\``).join(", ")} (not accepted by this build's \`mxcd import synapse\`).`,
        ]
      : []),
  ];
}

/** `MXCD_BENCH_IMPORT_ROWS` (100000) and `MXCD_BENCH_IMPORT_ROUNDS` (3). */
export function importSettingsFromEnv(env: NodeJS.ProcessEnv): ImportBenchSettings {
  const integer = (name: string, fallback: number) => {
    const value = Number(env[name] ?? fallback);
    if (!Number.isInteger(value) || value < 1) throw new Error(`${name} must be an integer >= 1`);
    return value;
  };
  return {
    rows: integer("MXCD_BENCH_IMPORT_ROWS", 100_000),
    rounds: integer("MXCD_BENCH_IMPORT_ROUNDS", 3),
  };
}

/** The section's heading in RESULTS.md, replaced in place by each run. */
const HEADING = "## Import: Synapse media store vs cp -r and sha256sum";

/** Replaces (or appends) this bench's section of `file`, leaving the rest as it is. */
function writeSection(file: string, lines: readonly string[]): void {
  const text = readFileSync(file, "utf8");
  const section = `${HEADING}\n\n${lines.join("\n")}\n`;
  const start = text.indexOf(HEADING);
  if (start === -1) {
    writeFileSync(file, `${text.trimEnd()}\n\n${section}`);
    return;
  }
  const next = text.indexOf("\n## ", start + HEADING.length);
  writeFileSync(file, text.slice(0, start) + section + (next === -1 ? "" : text.slice(next)));
}

if (isMainModule(import.meta.url)) {
  await runMain(async (cleanup) => {
    const started = Date.now();
    const load = loadavg()[0]!;
    const result = await benchImport(importSettingsFromEnv(process.env), cleanup);
    const lines = [
      ...importSection(result),
      "",
      `Run on ${new Date(started).toISOString()} (${Math.round((Date.now() - started) / 1000)} s); ` +
        `1-minute load average at the start ${load.toFixed(2)}, at the end ${loadavg()[0]!.toFixed(2)}.`,
    ];
    console.log([HEADING, "", ...lines].join("\n"));
    const file = process.env.MXCD_BENCH_RESULTS ?? join(import.meta.dirname, "RESULTS.md");
    writeSection(file, lines);
    console.error(`written to ${file}`);
  });
}
