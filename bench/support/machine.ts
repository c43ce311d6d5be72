/** A description of the machine and software a run was measured on. */
import { readFileSync } from "node:fs";
import { availableParallelism, cpus, loadavg, release, totalmem } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import { findPostgresBin } from "../../test/support/postgres-cluster.js";
import { runCommand } from "./processes.js";
import type { Tools } from "./tools.js";

/** One "name: value" line per fact, in display order. */
export type MachineDescription = ReadonlyArray<readonly [string, string]>;

/**
 * CPU model, core count, memory, kernel, the versions of node, nginx, wrk,
 * curl, libvips (vipsthumbnail's, and sharp's inside mxcd) and PostgreSQL,
 * and the load average (other work on the machine skews every figure).
 */
export async function describeMachine(tools: Tools): Promise<MachineDescription> {
  const gib = totalmem() / 1024 ** 3;
  return [
    ["CPU", cpuModel()],
    ["Cores", `${availableParallelism()} usable (${cpus().length} online)`],
    ["Memory", `${gib.toFixed(1)} GiB`],
    ["Kernel", `Linux ${release()}`],
    ["Node.js", process.version],
    ["nginx", await versionLine(tools.nginx, ["-v"], /nginx\/\S+/)],
    ["wrk", await versionLine(tools.wrk, ["-v"], /wrk \S+/)],
    ["curl", await versionLine(tools.curl, ["--version"], /curl \S+/)],
    [
      "libvips",
      `vipsthumbnail: ${await versionLine(tools.vipsthumbnail, ["--vips-version"], /libvips \S+/)}; ` +
        `mxcd (sharp ${sharp.versions.sharp}): libvips ${sharp.versions.vips}`,
    ],
    ["PostgreSQL", await postgresVersion()],
    [
      "Load average at start",
      loadavg()
        .map((load) => load.toFixed(2))
        .join(", "),
    ],
  ];
}

/** `postgres (PostgreSQL) 15.x` of the binaries the benchmark would use. */
async function postgresVersion(): Promise<string> {
  const bin = findPostgresBin();
  if (!bin) return "not installed";
  return versionLine(join(bin, "postgres"), ["--version"], /PostgreSQL\) \S+/).then((v) =>
    v.replace(/^PostgreSQL\) /, ""),
  );
}

/** `model name` from /proc/cpuinfo (the first CPU's), or what os.cpus() reports. */
function cpuModel(): string {
  try {
    const match = /^model name\s*:\s*(.+)$/m.exec(readFileSync("/proc/cpuinfo", "utf8"));
    if (match?.[1]) return match[1].trim();
  } catch {
    // Not Linux, or /proc is hidden: fall back below.
  }
  return cpus()[0]?.model ?? "unknown";
}

/** The part of a program's version banner (stdout or stderr) that `pattern` picks out. */
async function versionLine(program: string, args: string[], pattern: RegExp): Promise<string> {
  const result = await runCommand(program, args);
  const banner = `${result.stdout}\n${result.stderr}`;
  return pattern.exec(banner)?.[0] ?? (banner.trim().split("\n")[0] || "unknown");
}
