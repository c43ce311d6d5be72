/**
 * `mxcd_log_lines_dropped_total`: log lines `mxcd serve` dropped because
 * whatever reads its standard output fell behind by more than the
 * destination's backlog (log-destination.ts). Always exported, 0 for a
 * logger writing elsewhere (the tests' loggers, the other commands), so a
 * dashboard or alert can rely on the series.
 */
import { type Logger, pino } from "pino";
import { Counter, type Registry } from "prom-client";
import { BufferedLogDestination } from "./log-destination.js";

export function registerLogMetrics(registry: Registry, logger: Logger): void {
  const stream = (logger as unknown as Record<symbol, unknown>)[pino.symbols.streamSym];
  const destination = stream instanceof BufferedLogDestination ? stream : undefined;
  new Counter({
    name: "mxcd_log_lines_dropped_total",
    help: "Log lines dropped because standard output was not read fast enough or its reader went away (EPIPE)",
    registers: [registry],
    collect() {
      this.reset();
      this.inc(destination?.droppedLines ?? 0);
    },
  });
}
