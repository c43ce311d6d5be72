/**
 * Running a benchmark script: a Cleanup that runs at the end, on failure
 * and on Ctrl-C/SIGTERM, and a check for "this file is the script node was
 * started with" so a bench module can also be imported by `bench/run.ts`.
 */
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { Cleanup } from "./cleanup.js";
import { MissingToolsError } from "./tools.js";

/** True when the module with this `import.meta.url` is the program being run. */
export function isMainModule(moduleUrl: string): boolean {
  const script = process.argv[1];
  return script !== undefined && pathToFileURL(resolve(script)).href === moduleUrl;
}

/**
 * Runs `main` with a fresh Cleanup, then runs the cleanup whatever happened.
 * On SIGINT/SIGTERM the cleanup runs at once and the process exits with 130.
 * Exit status: 0, 1 on failure, 2 when a required program is missing.
 */
export async function runMain(main: (cleanup: Cleanup) => Promise<void>): Promise<void> {
  const cleanup = new Cleanup();
  let interrupted = false;
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    // `on`, not `once`: Ctrl-C reaches us several times (from the terminal, and relayed by
    // npm and tsx), and a repeat must not fall back to the default of dying on the spot.
    process.on(signal, () => {
      if (interrupted) return;
      interrupted = true;
      console.error(`\n${signal}: stopping servers and removing temp files`);
      void cleanup.run().finally(() => process.exit(130));
    });
  }
  try {
    await main(cleanup);
  } catch (error) {
    // After Ctrl-C, whatever was running fails as its servers go away: not news.
    if (error instanceof MissingToolsError) console.error(error.message);
    else if (!interrupted) console.error("benchmark failed:", error);
    process.exitCode = error instanceof MissingToolsError ? 2 : 1;
  } finally {
    await cleanup.run();
  }
}
