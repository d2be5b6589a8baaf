/**
 * The values the params schema fills in for keys a params file leaves out. They shape the commands
 * the glue builds, so the stages depend on this file; the schema itself (stages/lib/schema.ts:
 * validation and its messages) is in no stage's identity and must take every value from here
 * (scripts/stage-deps.ts checks it).
 */
export const DEFAULTS = {
  revision: "main",
  build: "hub",
  roles: [] as string[],
  paperDataUrl: "", // paper_data.url: needed only by source: download (the schema says so)
};
