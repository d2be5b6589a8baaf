/**
 * An S3-compatible remote (`s3://bucket/prefix`: AWS S3, MinIO, Ceph RGW, ...), with the cache's
 * layout under the prefix. The AWS SDK (@aws-sdk/client-s3) signs and retries; it is loaded only
 * when an S3 remote is used. Credentials come from the SDK's standard chain (AWS_ACCESS_KEY_ID /
 * AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN, AWS_PROFILE or `s3.profile`, SSO, instance roles) and
 * never appear in a message: errors are explained in one line and scrubbed of them.
 *
 * Objects appear only whole (S3 has no partial objects). Uploads are verified by hash: the bytes
 * read are hashed and must match the object's name before it is created; each request carries its
 * Content-MD5, which the server checks. A big object goes up as a multipart upload; an upload
 * interrupted (killed, network lost) is found again on the next push (ListMultipartUploads) and
 * resumed: its parts whose ETag is the MD5 of the local bytes are kept, the rest sent. Downloads
 * are resumable and verified like the directory remote's (resumable.ts, with ranged GETs).
 */
import crypto from "node:crypto";
import fsp from "node:fs/promises";
import type { Readable } from "node:stream";
import type * as S3 from "@aws-sdk/client-s3";
import { InputError } from "../errors.ts";
import type { Remote } from "./remote.ts";
import { mapLimit } from "./pool.ts";
import { crossesKill, mismatch, resumeInto, type TransferInfo } from "./resumable.ts";
import { explainS3Error, scrub } from "./s3-errors.ts";

export interface S3Options {
  /** Endpoint of an S3-compatible server (MinIO, Ceph, ...); default AWS. */
  endpointUrl?: string;
  region?: string;
  profile?: string;
  /** Path-style addressing (http://host/bucket/key); default: on when an endpoint is set. */
  pathStyle?: boolean;
}

const MiB = 1024 * 1024;
/** Parts at once within one multipart object (objects themselves go in parallel, -j). */
const PARTS_IN_FLIGHT = 4;

export function parseS3Url(url: string): { bucket: string; prefix: string } {
  const m = /^s3:\/\/([^/]+)\/?(.*)$/i.exec(url);
  if (!m || !/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(m[1]!)) {
    throw new InputError(`remote ${url}: expected s3://<bucket>/<prefix> with a valid bucket name (3-63 lower-case letters, digits, dots, hyphens)`);
  }
  return { bucket: m[1]!, prefix: m[2]!.replace(/^\/+|\/+$/g, "") };
}

function partSizeFor(size: number): number {
  const env = Number(process.env.PIPELINE_S3_PART_SIZE);
  const base = Number.isFinite(env) && env >= 5 * MiB ? env : 8 * MiB;
  return Math.max(base, Math.ceil(size / 10_000)); // S3 allows 10,000 parts
}

/**
 * How to find which of `objects` (in `folders` of files/sha256/) the remote has, given that one
 * folder holds `perFolder` objects there: list all of files/sha256/ (sequential pages of 1,000,
 * worth it while they are fewer than the HEAD rounds of 32), list each folder (32 at once), or HEAD.
 */
export function existenceCheck(objects: number, folders: number, perFolder: number): "list all" | "list folders" | "head" {
  if (Math.ceil((perFolder * 256) / 1000) <= objects / 32) return "list all";
  if (folders * Math.max(1, Math.ceil(perFolder / 1000)) < objects / 2) return "list folders";
  return "head";
}

const md5 = (b: Buffer) => crypto.createHash("md5").update(b).digest();
const unquote = (etag: string | undefined) => (etag ?? "").replace(/"/g, "").toLowerCase();

/** A crash as the kill-after-bytes test hook asks for it (after the parts already sent are done). */
async function dieNow(): Promise<never> {
  process.kill(process.pid, "SIGKILL");
  return new Promise<never>(() => {});
}

export class S3Remote implements Remote {
  readonly bucket: string;
  readonly prefix: string;
  private sdk: typeof S3 | null = null;
  private s3: S3.S3Client | null = null;
  private secrets: string[] = [];

  constructor(
    readonly url: string,
    private readonly opts: S3Options = {},
  ) {
    ({ bucket: this.bucket, prefix: this.prefix } = parseS3Url(url));
  }

  private key(rel: string): string {
    return this.prefix ? `${this.prefix}/${rel}` : rel;
  }

  private get endpoint(): string | undefined {
    return this.opts.endpointUrl ?? (process.env.AWS_ENDPOINT_URL_S3 || process.env.AWS_ENDPOINT_URL || undefined);
  }

  /** Load the SDK, make the client, resolve the credentials (remembered only to scrub them from messages). */
  private async client(): Promise<{ sdk: typeof S3; s3: S3.S3Client }> {
    if (this.s3 && this.sdk) return { sdk: this.sdk, s3: this.s3 };
    // the SDK warns on stderr at every start under node 20 about its releases after January 2027
    process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";
    const sdk = await import("@aws-sdk/client-s3");
    const endpoint = this.endpoint;
    const s3 = new sdk.S3Client({
      endpoint,
      region: this.opts.region ?? (process.env.AWS_REGION || process.env.AWS_DEFAULT_REGION || "us-east-1"),
      profile: this.opts.profile,
      forcePathStyle: this.opts.pathStyle ?? Boolean(endpoint),
      followRegionRedirects: true,
      // only the checksums we send (Content-MD5): S3-compatible servers differ on the newer ones
      requestChecksumCalculation: "WHEN_REQUIRED",
      responseChecksumValidation: "WHEN_REQUIRED",
    });
    for (const v of [process.env.AWS_ACCESS_KEY_ID, process.env.AWS_SECRET_ACCESS_KEY, process.env.AWS_SESSION_TOKEN]) if (v) this.secrets.push(v);
    try {
      const c = await s3.config.credentials();
      for (const v of [c.accessKeyId, c.secretAccessKey, c.sessionToken]) if (v) this.secrets.push(v);
    } catch (e) {
      throw this.explain(e, "credentials");
    }
    this.sdk = sdk;
    this.s3 = s3;
    return { sdk, s3 };
  }

  private explain(e: unknown, what: string): Error {
    return explainS3Error(e, { url: this.url, bucket: this.bucket, endpoint: this.endpoint ?? "AWS", what, profile: this.opts.profile ?? process.env.AWS_PROFILE, secrets: this.secrets });
  }

  /** Run one request; failures explained and scrubbed. */
  private async send<T>(what: string, f: (sdk: typeof S3, s3: S3.S3Client) => Promise<T>): Promise<T> {
    const { sdk, s3 } = await this.client();
    try {
      return await f(sdk, s3);
    } catch (e) {
      throw this.explain(e, what);
    }
  }

  async open(create: boolean): Promise<void> {
    const { sdk, s3 } = await this.client();
    try {
      await s3.send(new sdk.HeadBucketCommand({ Bucket: this.bucket }));
      return;
    } catch (e) {
      const status = (e as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
      if (status !== 404) throw this.explain(e, `bucket ${this.bucket}`);
    }
    if (!create) throw new InputError(`remote ${this.url}: bucket ${this.bucket} does not exist at ${this.endpoint ?? "AWS"} (push creates it; check the name and s3.endpoint_url)`);
    const region = await s3.config.region();
    await this.send(`create bucket ${this.bucket}`, (sdk2, c) =>
      c.send(new sdk2.CreateBucketCommand({ Bucket: this.bucket, ...(region && region !== "us-east-1" && !this.endpoint ? { CreateBucketConfiguration: { LocationConstraint: region as S3.BucketLocationConstraint } } : {}) })),
    );
  }

  /** Size of an object, or null when absent. */
  private async size(rel: string): Promise<number | null> {
    const { sdk, s3 } = await this.client();
    try {
      const h = await s3.send(new sdk.HeadObjectCommand({ Bucket: this.bucket, Key: this.key(rel) }));
      return h.ContentLength ?? 0;
    } catch (e) {
      if ((e as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 404) return null;
      throw this.explain(e, this.key(rel));
    }
  }

  /** Every object below the folder `dirRel` (all pages), as relative paths like `rels`. */
  private async listDir(dirRel: string): Promise<Set<string>> {
    const prefix = `${this.key(dirRel)}/`;
    const found = new Set<string>();
    let token: string | undefined;
    do {
      const r = await this.send(`${prefix} (list)`, (sdk, s3) => s3.send(new sdk.ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, ContinuationToken: token })));
      for (const o of r.Contents ?? []) if (o.Key) found.add(`${dirRel}/${o.Key.slice(prefix.length)}`);
      token = r.IsTruncated ? r.NextContinuationToken : undefined;
    } while (token);
    return found;
  }

  private async heads(rels: string[], out: Set<string>): Promise<void> {
    await mapLimit(rels, 32, async (r) => {
      if ((await this.size(r)) !== null) out.add(r);
    });
  }

  /**
   * Which objects are there, in the fewest requests: with many objects, the first folder
   * (files/sha256/ab/) is listed to estimate the remote's size; then the whole of files/sha256/
   * is listed (1,000 objects a page) when that is quick, else each folder the objects are in,
   * else one HEAD per object (32 at once), e.g. a few objects on a big remote.
   */
  async has(rels: string[]): Promise<Set<string>> {
    const out = new Set<string>();
    const objs = rels.filter((r) => r.startsWith("files/sha256/"));
    await this.heads(
      rels.filter((r) => !r.startsWith("files/sha256/")),
      out,
    );
    if (objs.length < 64) {
      await this.heads(objs, out);
      return out;
    }
    const dirs = [...new Set(objs.map((r) => r.slice(0, r.lastIndexOf("/"))))];
    const first = await this.listDir(dirs[0]!);
    let listed: Set<string>[];
    const how = existenceCheck(objs.length, dirs.length, first.size);
    if (how === "list all") listed = [await this.listDir("files/sha256")];
    else if (how === "list folders") listed = [first, ...(await mapLimit(dirs.slice(1), 32, (d) => this.listDir(d)))];
    else {
      await this.heads(objs, out);
      return out;
    }
    for (const r of objs) if (listed.some((l) => l.has(r))) out.add(r);
    return out;
  }

  async upload(local: string, rel: string, expect: string | null, onBytes: (n: number) => void): Promise<TransferInfo> {
    const size = (await fsp.stat(local)).size;
    const partSize = partSizeFor(size);
    if (size <= partSize) {
      const body = await fsp.readFile(local);
      const digest = crypto.createHash("sha256").update(body).digest("hex");
      if (expect !== null && digest !== expect) throw mismatch(local, digest, expect, "changed or corrupt source");
      if (crossesKill(body.length)) await dieNow();
      await this.send(this.key(rel), (sdk, s3) =>
        s3.send(new sdk.PutObjectCommand({ Bucket: this.bucket, Key: this.key(rel), Body: body, ContentLength: body.length, ContentMD5: md5(body).toString("base64") })),
      );
      onBytes(body.length);
      return { resumedAt: 0 };
    }
    return this.multipart(local, rel, size, partSize, expect, onBytes);
  }

  /** The upload of `key` an interrupted push left (its id and parts), if any. */
  private async pending(key: string): Promise<{ uploadId: string; parts: Map<number, { etag: string; size: number }> } | null> {
    const ups = await this.send(`${key} (list multipart uploads)`, (sdk, s3) => s3.send(new sdk.ListMultipartUploadsCommand({ Bucket: this.bucket, Prefix: key })));
    const mine = (ups.Uploads ?? []).filter((u) => u.Key === key && u.UploadId);
    if (!mine.length) return null;
    const uploadId = mine[mine.length - 1]!.UploadId!;
    const parts = new Map<number, { etag: string; size: number }>();
    let marker: string | undefined;
    for (;;) {
      const r = await this.send(`${key} (list parts)`, (sdk, s3) => s3.send(new sdk.ListPartsCommand({ Bucket: this.bucket, Key: key, UploadId: uploadId, PartNumberMarker: marker })));
      for (const p of r.Parts ?? []) if (p.PartNumber && p.ETag) parts.set(p.PartNumber, { etag: unquote(p.ETag), size: p.Size ?? -1 });
      if (!r.IsTruncated || !r.NextPartNumberMarker) break;
      marker = r.NextPartNumberMarker;
    }
    return { uploadId, parts };
  }

  private async multipart(local: string, rel: string, size: number, partSize: number, expect: string | null, onBytes: (n: number) => void): Promise<TransferInfo> {
    const key = this.key(rel);
    const found = await this.pending(key);
    const uploadId =
      found?.uploadId ?? (await this.send(`${key} (start multipart upload)`, (sdk, s3) => s3.send(new sdk.CreateMultipartUploadCommand({ Bucket: this.bucket, Key: key })))).UploadId!;
    const have = found?.parts ?? new Map<number, { etag: string; size: number }>();
    const hash = crypto.createHash("sha256");
    const etags: string[] = [];
    const inFlight = new Set<Promise<void>>();
    let resumedAt = 0;
    const fh = await fsp.open(local, "r");
    try {
      const nParts = Math.ceil(size / partSize);
      for (let n = 1; n <= nParts; n++) {
        const len = Math.min(partSize, size - (n - 1) * partSize);
        const buf = Buffer.alloc(len);
        const { bytesRead } = await fh.read(buf, 0, len, (n - 1) * partSize);
        if (bytesRead !== len) throw new Error(`${local}: shorter than expected (changed while pushing)`);
        hash.update(buf);
        const sum = md5(buf);
        const old = have.get(n);
        if (old && old.size === len && old.etag === sum.toString("hex")) {
          // sent by the interrupted attempt, and the server's MD5 of it matches these bytes
          etags[n - 1] = old.etag;
          resumedAt += len;
          onBytes(len);
          continue;
        }
        if (crossesKill(len)) {
          await Promise.all(inFlight);
          await dieNow();
        }
        const p = this.send(`${key} (part ${n})`, (sdk, s3) =>
          s3.send(new sdk.UploadPartCommand({ Bucket: this.bucket, Key: key, UploadId: uploadId, PartNumber: n, Body: buf, ContentLength: len, ContentMD5: sum.toString("base64") })),
        ).then((r) => {
          etags[n - 1] = unquote(r.ETag);
          onBytes(len);
        });
        const tracked = p.finally(() => inFlight.delete(tracked));
        tracked.catch(() => {}); // a failure is seen by the race/all below, never as an unhandled rejection
        inFlight.add(tracked);
        if (inFlight.size >= PARTS_IN_FLIGHT) await Promise.race(inFlight);
      }
      await Promise.all(inFlight);
    } finally {
      await Promise.allSettled(inFlight);
      await fh.close();
    }
    const digest = hash.digest("hex");
    if (expect !== null && digest !== expect) {
      await this.send(`${key} (abort)`, (sdk, s3) => s3.send(new sdk.AbortMultipartUploadCommand({ Bucket: this.bucket, Key: key, UploadId: uploadId })));
      throw mismatch(local, digest, expect, "changed or corrupt source");
    }
    await this.send(`${key} (complete multipart upload)`, (sdk, s3) =>
      s3.send(
        new sdk.CompleteMultipartUploadCommand({
          Bucket: this.bucket,
          Key: key,
          UploadId: uploadId,
          MultipartUpload: { Parts: etags.map((e, i) => ({ PartNumber: i + 1, ETag: `"${e}"` })) },
        }),
      ),
    );
    const there = await this.size(rel);
    if (there !== size) throw new Error(`${this.url}/${rel}: ${there ?? "no"} bytes after the upload, expected ${size}`);
    return { resumedAt };
  }

  async download(rel: string, dest: string, expect: string | null, onBytes: (n: number) => void): Promise<TransferInfo> {
    const size = await this.size(rel);
    if (size === null) throw new Error(`${this.url}/${rel}: not on the remote`);
    const open = async (start: number): Promise<Readable> => {
      const r = await this.send(this.key(rel), (sdk, s3) =>
        s3.send(new sdk.GetObjectCommand({ Bucket: this.bucket, Key: this.key(rel), ...(start > 0 ? { Range: `bytes=${start}-` } : {}) })),
      );
      return r.Body as Readable;
    };
    try {
      return await resumeInto(`${this.url}/${rel}`, dest, size, expect, open, onBytes);
    } catch (e) {
      throw new Error(scrub((e as Error).message, this.secrets));
    }
  }
}
