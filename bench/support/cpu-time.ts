/**
 * CPU time of a server process and its children (nginx's workers), from
 * /proc. Throughput depends on what else the machine is doing; CPU spent per
 * file served is a steadier measure of a server's own cost.
 */
import { readdirSync, readFileSync } from "node:fs";

/** Clock ticks per second of /proc's times: 100 on every mainstream Linux. */
const CLOCK_TICKS = 100;

/** User + system CPU seconds used so far by `pid` (all its threads) and its live descendants. */
export function cpuSeconds(pid: number): number {
  return ownCpuSeconds(pid) + childrenOf(pid).reduce((sum, child) => sum + cpuSeconds(child), 0);
}

function ownCpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // Fields after the command name, which is in parentheses and may hold spaces:
  // state is field 3, utime and stime are fields 14 and 15.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
}

function childrenOf(pid: number): number[] {
  try {
    const text = readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8");
    return text.split(" ").filter(Boolean).map(Number);
  } catch {
    return []; // A kernel without CONFIG_PROC_CHILDREN: count the process alone.
  }
}

/**
 * User + system CPU seconds of this process's children that have exited and
 * been waited for (cutime + cstime of /proc/self/stat): the difference over
 * a run of short-lived programs is the CPU they used.
 */
export function reapedChildrenCpuSeconds(): number {
  const stat = readFileSync("/proc/self/stat", "utf8");
  // cutime and cstime are fields 16 and 17.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[13]) + Number(fields[14])) / CLOCK_TICKS;
}

/**
 * User and system CPU seconds of one process's threads (/proc/PID/task): the
 * main thread as `main`, the others summed by thread name.
 */
export function threadCpuSeconds(pid: number): Map<string, { user: number; system: number }> {
  const byName = new Map<string, { user: number; system: number }>();
  let tids: string[] = [];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return byName;
  }
  for (const tid of tids) {
    let stat: string;
    try {
      stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, "utf8");
    } catch {
      continue; // The thread ended.
    }
    const name =
      tid === String(pid) ? "main" : stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const sum = byName.get(name) ?? { user: 0, system: 0 };
    sum.user += Number(fields[11]) / CLOCK_TICKS;
    sum.system += Number(fields[12]) / CLOCK_TICKS;
    byName.set(name, sum);
  }
  return byName;
}
