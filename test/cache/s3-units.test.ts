/** The S3 remote's pure parts: its URL, and how it finds which objects a remote has (listing vs HEAD). */
import { describe, expect, it } from "vitest";
import { existenceCheck, parseS3Url } from "../../engine/cache/s3-remote.ts";
import { scrub } from "../../engine/cache/s3-errors.ts";

describe("parseS3Url", () => {
  it("takes the bucket and the prefix (slashes trimmed, none allowed)", () => {
    expect(parseS3Url("s3://my-bucket/team/cache/")).toEqual({ bucket: "my-bucket", prefix: "team/cache" });
    expect(parseS3Url("s3://my.bucket")).toEqual({ bucket: "my.bucket", prefix: "" });
    expect(parseS3Url("S3://abc/x")).toEqual({ bucket: "abc", prefix: "x" });
  });
  it("refuses an invalid bucket name with the rule", () => {
    for (const bad of ["s3://", "s3://ab/x", "s3://Upper/x", "s3://under_score/x", "s3:///x"]) {
      expect(() => parseS3Url(bad)).toThrow(/expected s3:\/\/<bucket>\/<prefix> with a valid bucket name/);
    }
  });
});

describe("existenceCheck", () => {
  it("lists everything on a small remote, each folder on a big one, HEADs a few objects on a big one", () => {
    expect(existenceCheck(1000, 250, 4)).toBe("list all"); // ~1,000 objects there: 2 pages
    expect(existenceCheck(3000, 256, 4000)).toBe("list folders"); // ~1M there: 256 folders x 4 pages < 1,500
    expect(existenceCheck(100, 90, 4000)).toBe("head"); // 100 HEADs beat 90 x 4 pages
    expect(existenceCheck(600, 230, 0)).toBe("list all"); // an empty remote: one page
  });
});

describe("scrub", () => {
  it("replaces every credential value in a message", () => {
    expect(scrub("key AKIA123 secret s/e+c in AKIA123", ["AKIA123", "s/e+c"])).toBe("key *** secret *** in ***");
  });
});
