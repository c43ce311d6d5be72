/** `mxcd migrate`: apply pending schema migrations and report them. */
import { loadConfigFile } from "../config/load-config.js";
import { createDatabase } from "../db/database.js";
import { runMigrations } from "../db/migrate.js";

export async function migrateCommand(configPath: string): Promise<void> {
  const config = loadConfigFile(configPath);
  const database = createDatabase(config.database);
  try {
    const { applied } = await runMigrations(database);
    console.log(applied.length === 0 ? "schema is up to date" : `applied: ${applied.join(", ")}`);
  } finally {
    await database.close();
  }
}
