/**
 * Where the content-addressed cache and the default remote are, and how outs are linked.
 *
 * Sources, first wins:
 *   cache dir:  PIPELINE_CACHE_DIR  > `cache.dir` of pipeline.config.yaml  > .pipeline/cache
 *   link types: PIPELINE_CACHE_LINK (e.g. "hardlink,copy") > `cache.link` > reflink,hardlink,copy
 *   remote:     --remote            > PIPELINE_REMOTE > `remote` of pipeline.config.yaml
 *   s3 remote:  `s3:` of pipeline.config.yaml (endpoint_url, region, profile, path_style); else the
 *               AWS variables (AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL, AWS_REGION, AWS_PROFILE, keys)
 * pipeline.config.yaml is optional and committed (shared settings of the project); relative paths
 * in it are relative to the project directory.
 */
import fs from "node:fs";
import path from "node:path";
import { z } from "zod";
import type { ProjectContext } from "../context.ts";
import { YamlFile, formatKeyPath } from "../config.ts";
import { InputError } from "../errors.ts";
import type { S3Options } from "./s3-remote.ts";

const LINK_TYPES = ["reflink", "hardlink", "copy"] as const;
export type LinkType = (typeof LINK_TYPES)[number];

const CONFIG_FILE = "pipeline.config.yaml";

const linkList = z.array(z.enum(LINK_TYPES, { error: "expected reflink, hardlink or copy" })).min(1, { error: "expected at least one link type" });

const configSchema = z.strictObject({
  cache: z
    .strictObject({
      dir: z.string().min(1).optional(),
      link: linkList.optional(),
    })
    .optional(),
  remote: z.string({ error: "expected a remote: a directory path (shared file system) or s3://bucket/prefix" }).min(1).optional(),
  s3: z
    .strictObject({
      endpoint_url: z.url({ protocol: /^https?$/, error: "expected an http(s) URL, e.g. http://minio.local:9000" }).optional(),
      region: z.string().min(1).optional(),
      profile: z.string().min(1).optional(),
      path_style: z.boolean().optional(),
    })
    .optional(),
});

export interface CacheSettings {
  /** Absolute cache directory. */
  dir: string;
  /** Link types to try, in order. */
  link: LinkType[];
  /** Default remote (absolute path or URL), if configured. */
  remote?: string;
  /** How to reach an s3:// remote (`s3:` of pipeline.config.yaml). */
  s3: S3Options;
  /** Where each setting came from (for `status`). */
  dirSource: string;
}

function parseLinkEnv(v: string): LinkType[] {
  const items = v.split(",").map((x) => x.trim()).filter(Boolean);
  const r = linkList.safeParse(items);
  if (!r.success) throw new InputError(`PIPELINE_CACHE_LINK=${v}: expected a comma-separated list of reflink, hardlink, copy (e.g. "hardlink,copy")`);
  return r.data;
}

export function cacheSettings(ctx: ProjectContext, env: NodeJS.ProcessEnv = process.env): CacheSettings {
  const file = path.join(ctx.root, CONFIG_FILE);
  let cfg: z.infer<typeof configSchema> = {};
  if (fs.existsSync(file)) {
    const y = YamlFile.read(file, CONFIG_FILE);
    const r = configSchema.safeParse(y.value ?? {});
    if (!r.success) {
      const iss = r.error.issues[0]!;
      const p = iss.path as (string | number)[];
      throw new InputError(`${y.pos(p)}: ${formatKeyPath(p) || "(top level)"}: ${iss.message} (keys: cache.dir, cache.link, remote, s3.endpoint_url, s3.region, s3.profile, s3.path_style)`);
    }
    cfg = r.data;
  }
  const abs = (p: string) => (/^[a-z][a-z0-9+.-]*:\/\//i.test(p) ? p : path.resolve(ctx.root, p));
  let dir = path.join(ctx.stateDir, "cache");
  let dirSource = "default";
  if (env.PIPELINE_CACHE_DIR) {
    dir = path.resolve(ctx.root, env.PIPELINE_CACHE_DIR);
    dirSource = "PIPELINE_CACHE_DIR";
  } else if (cfg.cache?.dir) {
    dir = abs(cfg.cache.dir);
    dirSource = `${CONFIG_FILE} cache.dir`;
  }
  const link = env.PIPELINE_CACHE_LINK ? parseLinkEnv(env.PIPELINE_CACHE_LINK) : (cfg.cache?.link ?? [...LINK_TYPES]);
  const remote = env.PIPELINE_REMOTE || (cfg.remote ? abs(cfg.remote) : undefined);
  const s3: S3Options = { endpointUrl: cfg.s3?.endpoint_url, region: cfg.s3?.region, profile: cfg.s3?.profile, pathStyle: cfg.s3?.path_style };
  return { dir, link, remote: remote ? abs(remote) : undefined, s3, dirSource };
}
