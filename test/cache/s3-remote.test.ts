/**
 * S3 remotes with the real CLI against a real S3-compatible server (moto_server, its own process,
 * over HTTP): push, then pull into a fresh clone (status all current, nothing run there); an
 * interrupted multipart push resumed, and an interrupted pull; a corrupted object detected, on the
 * remote and in the cache; many objects found by listing; bad endpoints/buckets/credentials as
 * one line, never a credential. The server checks every request's signature (s3-server.ts).
 */
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { DeleteObjectCommand, GetObjectCommand, HeadObjectCommand, ListMultipartUploadsCommand, ListObjectsV2Command, ListPartsCommand, PutObjectCommand } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cli, commitAll, git, gitProject, read, runs, tempDir } from "./helpers.ts";
import { AWS_BASE_ENV, startS3Server, type S3Server } from "./s3-server.ts";

let server: S3Server;
beforeAll(async () => {
  server = await startS3Server();
});
afterAll(async () => {
  await server?.stop();
});

const sha = (file: string) => crypto.createHash("sha256").update(fs.readFileSync(file)).digest("hex");
const objKey = (prefix: string, hash: string) => `${prefix}/files/sha256/${hash.slice(0, 2)}/${hash.slice(2)}`;

function clone(src: string): string {
  const dest = path.join(tempDir("clone-"), "p");
  git(src, "clone", "-q", src, dest);
  return dest;
}

/** The CLI with the server's credentials (and nothing from the machine's own AWS set-up); they never show. */
function s3cli(dir: string, args: string[], env: Record<string, string> = {}) {
  const creds = { AWS_ACCESS_KEY_ID: server.accessKeyId, AWS_SECRET_ACCESS_KEY: server.secretAccessKey };
  return cli(dir, args, { ...AWS_BASE_ENV, ...creds, ...env }).then((r) => {
    expect(r.out).not.toContain(server.secretAccessKey);
    expect(r.out).not.toContain(server.accessKeyId);
    return r;
  });
}

function config(bucket: string, prefix: string): string {
  return `remote: s3://${bucket}/${prefix}\ns3:\n  endpoint_url: ${server.endpoint}\n`;
}

async function keys(bucket: string): Promise<string[]> {
  const r = await server.client.send(new ListObjectsV2Command({ Bucket: bucket }));
  return (r.Contents ?? []).map((c) => c.Key!).sort();
}

describe("S3 remote (moto_server)", () => {
  it("push, then pull into a fresh clone: status all current and nothing ran there", async () => {
    const dir = gitProject("a", { "pipeline.config.yaml": config("persona-a", "team/cache") });
    expect((await s3cli(dir, ["repro"])).code).toBe(0);
    commitAll(dir, "a");
    const p = await s3cli(dir, ["push"]);
    expect(p.code, p.out).toBe(0);
    expect(p.stdout).toMatch(/push to s3:\/\/persona-a\/team\/cache: 5 objects uploaded \(\d+ B\), 0 already there, 2 run-cache entries/);
    const stored = await keys("persona-a");
    expect(stored).toHaveLength(7);
    expect(stored.every((k) => /^team\/cache\/(files\/sha256\/[0-9a-f]{2}\/[0-9a-f]{62}(\.dir)?|runs\/[0-9a-f]{2}\/[0-9a-f]+\.json)$/.test(k))).toBe(true);
    expect(stored).toContain(objKey("team/cache", sha(path.join(dir, "f.txt"))));
    const p2 = await s3cli(dir, ["push"]);
    expect(p2.stdout).toContain("0 objects uploaded (0 B), 5 already there");

    const c = clone(dir);
    expect((await s3cli(c, ["status"])).code).toBe(1);
    const pull = await s3cli(c, ["pull"]);
    expect(pull.code, pull.out).toBe(0);
    expect(pull.stdout).toContain("pull from s3://persona-a/team/cache: 5 objects downloaded");
    expect(pull.stdout).toContain("checkout: 3 restored");
    const st = await s3cli(c, ["status"]);
    expect(st.code, st.out).toBe(0);
    expect(st.stdout).toContain("all 2 stages current");
    expect(st.stdout).toContain("remote: s3://persona-a/team/cache");
    expect(read(c, "final.txt")).toBe("a\na-f\n");
    expect(read(c, "out/sub/b.txt")).toBe("same\n");
    expect(runs(c)).toEqual([]);

    // repro --pull in another clone, the endpoint from the AWS variable instead of the config
    const c2 = clone(dir);
    fs.writeFileSync(path.join(c2, "pipeline.config.yaml"), "remote: s3://persona-a/team/cache\n");
    const r = await s3cli(c2, ["repro", "--pull"], { AWS_ENDPOINT_URL_S3: server.endpoint });
    expect(r.code, r.out).toBe(0);
    expect(r.stdout).toContain("--pull: 5 objects downloaded from s3://persona-a/team/cache");
    expect(r.stdout).toContain("summary: current 2");
    expect(runs(c2)).toEqual([]);
  });

  it("an interrupted multipart push resumes (parts already there are kept), and so does an interrupted pull", async () => {
    const size = 12 * 1024 * 1024;
    const prefix = "big";
    const dir = gitProject("a", {
      "pipeline.yaml": `stages:
  big:
    cmd: python3 -c "import random; random.seed(11); open('big.bin','wb').write(random.randbytes(${size}))"
    outs: [big.bin]
`,
      ".gitignore": "big.bin\n.pipeline/\n",
      "pipeline.config.yaml": config("persona-big", prefix),
    });
    const parts = { PIPELINE_S3_PART_SIZE: String(5 * 1024 * 1024) };
    expect((await s3cli(dir, ["repro"])).code).toBe(0);
    commitAll(dir, "big");
    const want = sha(path.join(dir, "big.bin"));
    const key = objKey(prefix, want);

    // killed while sending the second of three 5 MiB parts
    const killed = await s3cli(dir, ["push", "-j", "1"], { ...parts, PIPELINE_TRANSFER_KILL_AFTER_BYTES: String(7 * 1024 * 1024) });
    expect(killed.signal, killed.out).toBe("SIGKILL");
    await expect(server.client.send(new HeadObjectCommand({ Bucket: "persona-big", Key: key }))).rejects.toThrow(); // never visible half-sent
    const ups = (await server.client.send(new ListMultipartUploadsCommand({ Bucket: "persona-big", Prefix: key }))).Uploads ?? [];
    expect(ups).toHaveLength(1);
    const sent = await server.client.send(new ListPartsCommand({ Bucket: "persona-big", Key: key, UploadId: ups[0]!.UploadId }));
    expect((sent.Parts ?? []).map((x) => [x.PartNumber, x.Size])).toEqual([[1, 5 * 1024 * 1024]]);

    const resumed = await s3cli(dir, ["push"], { ...parts, PIPELINE_PROGRESS_INTERVAL_MS: "0" });
    expect(resumed.code, resumed.out).toBe(0);
    expect(resumed.stdout).toContain("1 object uploaded (12.0 MiB)");
    expect(resumed.stdout).toContain("1 resumed from an interrupted transfer");
    expect(resumed.stderr).toMatch(/push: 0\/1 files, [\d.]+ MiB\/12\.0 MiB/);
    expect((await server.client.send(new ListMultipartUploadsCommand({ Bucket: "persona-big", Prefix: key }))).Uploads ?? []).toHaveLength(0);
    const got = await server.client.send(new GetObjectCommand({ Bucket: "persona-big", Key: key }));
    expect(crypto.createHash("sha256").update(Buffer.from(await got.Body!.transformToByteArray())).digest("hex")).toBe(want);

    // a pull killed mid-object leaves a partial that the next pull resumes with a ranged GET
    const c = clone(dir);
    const cut = await s3cli(c, ["pull"], { PIPELINE_TRANSFER_KILL_AFTER_BYTES: String(3 * 1024 * 1024) });
    expect(cut.signal, cut.out).toBe("SIGKILL");
    const partial = path.join(c, ".pipeline/cache/tmp", `${want}.download.partial`);
    const have = fs.statSync(partial).size;
    expect(have).toBeGreaterThan(0);
    expect(have).toBeLessThan(size);
    expect(fs.existsSync(path.join(c, "big.bin"))).toBe(false);
    const pull = await s3cli(c, ["pull"]);
    expect(pull.code, pull.out).toBe(0);
    expect(pull.stdout).toContain("1 object downloaded");
    expect(pull.stdout).toContain("1 resumed from an interrupted transfer");
    expect(sha(path.join(c, "big.bin"))).toBe(want);
    expect((await s3cli(c, ["status"])).code).toBe(0);
  });

  it("a corrupted object is detected: on the remote (pull refuses it, names the out), in the cache (fetched again)", async () => {
    const dir = gitProject("a", { "pipeline.config.yaml": config("persona-rot", "p") });
    expect((await s3cli(dir, ["repro"], { PIPELINE_CACHE_LINK: "copy" })).code).toBe(0);
    commitAll(dir, "a");
    expect((await s3cli(dir, ["push"])).code).toBe(0);
    const want = sha(path.join(dir, "f.txt"));

    // in the local cache: found by pull, moved aside, downloaded again
    const obj = path.join(dir, ".pipeline/cache/files/sha256", want.slice(0, 2), want.slice(2));
    fs.chmodSync(obj, 0o644);
    fs.writeFileSync(obj, "bit rot\n");
    const pull = await s3cli(dir, ["pull"], { PIPELINE_CACHE_LINK: "copy" });
    expect(pull.code, pull.out).toBe(0);
    expect(pull.stdout).toContain("1 corrupt in the cache (moved to <cache>/corrupt/), fetched again");
    expect(sha(obj)).toBe(want);

    // on the remote: a fresh clone's pull checks the hash, keeps nothing of it, restores the rest
    await server.client.send(new PutObjectCommand({ Bucket: "persona-rot", Key: objKey("p", want), Body: "bit rot on the server\n" }));
    const c = clone(dir);
    const bad = await s3cli(c, ["pull"]);
    expect(bad.code, bad.out).toBe(1);
    expect(bad.stdout).toMatch(new RegExp(`incomplete: f\\.txt: s3://persona-rot/p/files/sha256/${want.slice(0, 2)}/${want.slice(2)}: sha256 [0-9a-f]{12}\\.\\.\\. does not match ${want.slice(0, 12)}`));
    expect(fs.existsSync(path.join(c, "f.txt"))).toBe(false);
    expect(fs.existsSync(path.join(c, ".pipeline/cache/files/sha256", want.slice(0, 2), want.slice(2)))).toBe(false);
    expect(read(c, "out/a.txt")).toBe("a\n"); // the intact outs came
    expect((await s3cli(c, ["status"])).code).toBe(1);
  });

  it("many objects: what the remote has is found by listing its folders, not one HEAD each; missing ones are sent again", async () => {
    const n = 600;
    const dir = gitProject("a", {
      "pipeline.yaml": `stages:
  many:
    cmd: python3 -c "import os; os.makedirs('many', exist_ok=True); [open(f'many/{i}.txt','w').write(str(i)) for i in range(${n})]"
    outs: [many]
`,
      ".gitignore": "many/\n.pipeline/\n",
      "pipeline.config.yaml": config("persona-many", "m"),
    });
    expect((await s3cli(dir, ["repro"])).code).toBe(0);
    commitAll(dir, "many");
    const p = await s3cli(dir, ["push", "-j", "16"]);
    expect(p.code, p.out).toBe(0);
    expect(p.stdout).toContain(`${n + 1} objects uploaded`);

    const heads = () => (server.log().match(/"HEAD \/persona-many\//g) ?? []).length;
    const lists = () => (server.log().match(/"GET \/persona-many\/?\?list-type=2/g) ?? []).length;
    const [h0, l0] = [heads(), lists()];
    const again = await s3cli(dir, ["push"]);
    expect(again.stdout).toContain(`0 objects uploaded (0 B), ${n + 1} already there`);
    expect(lists() - l0).toBeGreaterThan(0);
    expect(lists() - l0).toBeLessThanOrEqual(257); // at most one per files/sha256/ab/ folder (+ the manifest's)
    expect(heads() - h0).toBeGreaterThanOrEqual(1); // the bucket's
    expect(heads() - h0).toBeLessThan(10); // the bucket and the run-cache entry, not 601 objects

    // objects deleted on the remote are found missing by the listing and sent again
    const listed = (await keys("persona-many")).filter((k) => !k.endsWith(".dir") && k.includes("/files/"));
    const gone = listed.slice(0, 3);
    for (const k of gone) await server.client.send(new DeleteObjectCommand({ Bucket: "persona-many", Key: k }));
    const refill = await s3cli(dir, ["push"]);
    expect(refill.stdout).toContain(`3 objects uploaded (`);
    expect(refill.stdout).toContain(`${n - 2} already there`);
    const c = clone(dir);
    const pull = await s3cli(c, ["pull"]);
    expect(pull.code, pull.out).toBe(0);
    expect(read(c, "many/599.txt")).toBe("599");
    expect((await s3cli(c, ["status"])).code).toBe(0);
  }, 240_000);

  it("bad endpoint, missing bucket, bad config: one clear line, exit 2, no credential in it", async () => {
    const dir = gitProject("a", { "pipeline.config.yaml": "remote: s3://persona-none/x\ns3:\n  endpoint_url: http://127.0.0.1:9\n" });
    expect((await s3cli(dir, ["repro"])).code).toBe(0);
    const down = await s3cli(dir, ["push"]);
    expect(down.code, down.out).toBe(2);
    expect(down.stderr).toMatch(/error: remote s3:\/\/persona-none\/x: cannot reach http:\/\/127\.0\.0\.1:9 \(ECONNREFUSED\)/);

    fs.writeFileSync(path.join(dir, "pipeline.config.yaml"), config("persona-none", "x"));
    const none = await s3cli(dir, ["fetch"]);
    expect(none.code, none.out).toBe(2);
    expect(none.stderr).toContain(`error: remote s3://persona-none/x: bucket persona-none does not exist at ${server.endpoint}`);

    // a wrong secret (the signature does not match) or no credentials at all
    const denied = await s3cli(dir, ["fetch"], { AWS_SECRET_ACCESS_KEY: `${server.secretAccessKey}x` });
    expect(denied.code, denied.out).toBe(2);
    expect(denied.stderr).toContain("error: remote s3://persona-none/x: access denied (HTTP 403) on bucket persona-none: check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY");
    const nocreds = await s3cli(dir, ["fetch"], { AWS_ACCESS_KEY_ID: "", AWS_SECRET_ACCESS_KEY: "" });
    expect(nocreds.code, nocreds.out).toBe(2);
    expect(nocreds.stderr).toContain("error: remote s3://persona-none/x: no usable AWS credentials");

    fs.writeFileSync(path.join(dir, "pipeline.config.yaml"), "remote: s3://persona-none/x\ns3:\n  endpoint_url: ftp://host\n");
    const cfg = await s3cli(dir, ["push"]);
    expect(cfg.code).toBe(2);
    expect(cfg.stderr).toMatch(/pipeline\.config\.yaml:3:\d+: s3\.endpoint_url: expected an http\(s\) URL/);
  });
});
