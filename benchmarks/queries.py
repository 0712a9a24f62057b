"""`make bench-queries [ARGS=--quick]`: query results to CSV evidence, against same-run references (P9).

P9 (PERF-REL-SEC.md A4): 1M rows × 12 columns (about 300 MB in the evidence form) stored as evidence
with SHA-256 computed while writing, in bounded memory. Both paths run as the app runs them (the
query service's own functions): the result's bytes (`csvstream.csv_source`) go through the evidence
service's `_HashingFile` into Django's FileSystemStorage, then the analysis pass
(`query_summary.summarize_csv`: flags, top values, preview; DuckDB over the stored file) runs, in the
same task as in the app, so its time is counted.
- page path: the real `AthenaEngine.result()` over GetQueryResults-shaped pages of 1,000 rows (header on
  the first page only; building the page dicts stands in for boto3's parsing), rendered by `CsvStream`
  in Athena's result-CSV form. Reference: `csv.writer` over the same tuples into a plain file (its own
  CSV dialect). Goal: ≥ 0.2 times the reference's rows/s.
- S3 path: `AthenaEngine.result()` with `results_from_s3`: the result object (the page path's output,
  which is byte for byte what Athena writes) read through botocore's own StreamingBody and copied as
  it is. Reference: `sha256sum` of the same file. Goal: ≥ 0.5 times its bytes/s.
- Peak RSS ≤ 64 MB. Each path runs in a fresh interpreter, so its peak is its own; the interpreter
  with Django and boto3 imported (baseline) is reported too, and the growth over it. The store step
  alone and the page path without Django are reported as well, to show where memory goes.

A measurement, not a test: the exit status is 0 even when a goal fails; failures are printed as FAIL.
Results go to benchmarks/results/queries-latest.json.
"""

import argparse
import csv
import io
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PAGE = 1000
COLUMNS = (
    "eventtime",
    "eventsource",
    "eventname",
    "awsregion",
    "sourceipaddress",
    "arn",
    "principalid",
    "errorcode",
    "useragent",
    "requestid",
    "eventid",
    "requestparameters",
)
NAMES = ("DescribeInstances", "GetObject", "AssumeRole", "CreateUser", "ListBuckets", "PutObject", "RunInstances")


def rows(count: int) -> Iterator[tuple[str | None, ...]]:
    """Deterministic CloudTrail-like rows, about 180 bytes each as CSV."""
    for i in range(count):
        yield (
            f"2026-11-{1 + i % 28:02d}T{i % 24:02d}:{i % 60:02d}:{i * 7 % 60:02d}Z",
            "ec2.amazonaws.com",
            NAMES[i % len(NAMES)],
            "eu-west-1",
            f"10.{i % 256}.{i // 256 % 256}.{i % 7}",
            f"arn:aws:sts::210987654321:assumed-role/node/i-{i:017x}",
            f"AROAQXAMPLE{i % 1000:05d}:i-{i:08x}",
            "AccessDenied" if i % 50 == 0 else None,
            "aws-cli/2.17.40 md/awscrt#0.21.2",
            f"{i:08x}-0000-4000-8000-{i:012x}",
            f"{i * 31:08x}-1111-4000-8000-{i:012x}",
            '{"instanceId":"i-0abc"}' if i % 3 == 0 else None,
        )


class FakeAthena:
    """GetQueryResults as boto3 hands it over: pages of 1,000 rows of Datum dicts, built on request
    from one running row generator (nothing is kept between pages, as with the real client)."""

    def __init__(self, count: int) -> None:
        self.count = count
        self._source = rows(count)

    def get_query_execution(self, **params: Any) -> dict[str, Any]:
        return {"QueryExecution": {"StatementType": "DML", "Status": {"State": "SUCCEEDED"}}}

    def get_query_results(self, **params: Any) -> dict[str, Any]:
        start = int(params.get("NextToken") or 0)
        end = min(start + PAGE, self.count)
        page_rows = [{"Data": [{"VarCharValue": c} for c in COLUMNS]}] if start == 0 else []
        for _ in range(end - start):
            row = next(self._source)
            page_rows.append({"Data": [{} if v is None else {"VarCharValue": v} for v in row]})
        page: dict[str, Any] = {
            "ResultSet": {
                "Rows": page_rows,
                "ResultSetMetadata": {"ColumnInfo": [{"Name": c, "Type": "varchar"} for c in COLUMNS]},
            }
        }
        if end < self.count:
            page["NextToken"] = str(end)
        return page


class StreamingBody:
    """What botocore returns for an S3 GetObject body: read(amt) over a stream."""

    def __init__(self, path: str) -> None:
        self._file = open(path, "rb")  # noqa: SIM115 - closed by close()

    def read(self, amt: int | None = None) -> bytes:
        return self._file.read(-1 if amt is None else amt)

    def seek(self, offset: int, whence: int = 0) -> int:
        raise io.UnsupportedOperation("seek")  # as botocore's StreamingBody (an IOBase) does

    def close(self) -> None:
        self._file.close()


# --- children: one path each, in a fresh interpreter -------------------------------------------------


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()


def child_reference(count: int, out: str) -> dict[str, Any]:
    started = time.perf_counter()
    with open(out, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\r\n")
        writer.writerow(COLUMNS)
        writer.writerows(rows(count))
    return {"seconds": time.perf_counter() - started, "bytes": os.path.getsize(out), "peak_rss_mb": _peak_mb()}


def _store(stream: Any, directory: str) -> tuple[str, int, str]:
    from django.core.files.storage import FileSystemStorage

    from incidents.services.evidence import _HashingFile

    hashing = _HashingFile(stream, name="result.csv", max_bytes=1 << 40)
    name = FileSystemStorage(location=directory).save("result.csv", hashing)
    return os.path.join(directory, name), hashing.count, hashing.digest.hexdigest()


def _app_path(engine: Any, directory: str, baseline: float) -> dict[str, Any]:
    """What the query service does with a finished result: store its CSV hashed, then analyse it."""
    from incidents.services.query_summary import summarize_csv
    from integrations.queries.csvstream import csv_source

    started = time.perf_counter()
    engine.status("bench")
    result = engine.result("bench")
    source = csv_source(result)
    path, size, digest = _store(source, directory)
    source.close()
    stored, store_peak = time.perf_counter(), _peak_mb()
    summary = summarize_csv(path, result.columns, preview_size=25, sensitive=("Create*", "Run*"))
    finished = time.perf_counter()
    return {
        "seconds": finished - started,
        "store_seconds": stored - started,
        "analysis_seconds": finished - stored,
        "bytes": size,
        "rows": summary.rows,
        "flagged": summary.flagged,
        "sha256": digest,
        "baseline_rss_mb": baseline,
        "store_peak_rss_mb": store_peak,
        "peak_rss_mb": _peak_mb(),
        "path": path,
    }


def child_pages(count: int, directory: str) -> dict[str, Any]:
    _django()
    from integrations.queries.athena import AthenaConfig, AthenaEngine

    baseline = _peak_mb()
    return _app_path(AthenaEngine(AthenaConfig(), client=FakeAthena(count)), directory, baseline)


def child_bare(count: int, out: str) -> dict[str, Any]:
    """The page path without Django or the analysis: engine → CsvStream → file. Its peak RSS is the
    rendering code's own."""
    from integrations.queries.athena import AthenaConfig, AthenaEngine
    from integrations.queries.csvstream import CsvStream, csv_write

    baseline = _peak_mb()
    engine = AthenaEngine(AthenaConfig(), client=FakeAthena(count))
    started = time.perf_counter()
    result = engine.result("bench")
    stream = CsvStream(result.columns, result.rows)
    size, digest = csv_write(out, stream)
    return {
        "seconds": time.perf_counter() - started,
        "bytes": size,
        "rows": stream.rows,
        "sha256": digest,
        "baseline_rss_mb": baseline,
        "peak_rss_mb": _peak_mb(),
    }


class FakeAthenaS3:
    """GetQueryExecution (SUCCEEDED, with the result location) and a one-row GetQueryResults for the
    column names; S3 GetObject answers with botocore's own StreamingBody over the result file."""

    def __init__(self, path: str) -> None:
        self.path = path

    def get_query_execution(self, **params: Any) -> dict[str, Any]:
        return {
            "QueryExecution": {
                "StatementType": "DML",
                "Status": {"State": "SUCCEEDED"},
                "ResultConfiguration": {"OutputLocation": "s3://results/bench.csv"},
            }
        }

    def get_query_results(self, **params: Any) -> dict[str, Any]:
        meta = {"ColumnInfo": [{"Name": c, "Type": "varchar"} for c in COLUMNS]}
        return {"ResultSet": {"Rows": [{"Data": [{"VarCharValue": c} for c in COLUMNS]}], "ResultSetMetadata": meta}}

    def get_object(self, **params: Any) -> dict[str, Any]:
        from botocore.response import StreamingBody as BotocoreBody

        return {"Body": BotocoreBody(open(self.path, "rb"), os.path.getsize(self.path))}  # noqa: SIM115


def child_s3_app(source: str, directory: str) -> dict[str, Any]:
    """The S3 path as the app runs it: the object copied byte for byte into storage, then analysed."""
    _django()
    from integrations.queries.athena import AthenaConfig, AthenaEngine

    baseline = _peak_mb()
    fake = FakeAthenaS3(source)
    engine = AthenaEngine(AthenaConfig(results_from_s3=True), client=fake, s3=fake)
    return _app_path(engine, directory, baseline)


def child_s3(source: str, directory: str) -> dict[str, Any]:
    """The copy alone (no engine, no analysis): a file read as botocore's StreamingBody is, into storage."""
    _django()
    import boto3  # noqa: F401 - the S3 path runs where boto3 is loaded: count it in the baseline

    baseline = _peak_mb()
    body = StreamingBody(source)
    started = time.perf_counter()
    path, size, digest = _store(body, directory)
    seconds = time.perf_counter() - started
    body.close()
    return {
        "seconds": seconds,
        "bytes": size,
        "sha256": digest,
        "baseline_rss_mb": baseline,
        "peak_rss_mb": _peak_mb(),
        "path": path,
    }


def _child(*args: str) -> dict[str, Any]:
    done = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        sys.exit(f"child {args[0]} failed:\n{done.stderr}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def _sha256sum(path: str) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(["sha256sum", path], capture_output=True, text=True, check=True)
    return time.perf_counter() - started, done.stdout.split()[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help="100k rows")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        handlers = {
            "reference": child_reference,
            "pages": child_pages,
            "bare": child_bare,
            "s3": child_s3,
            "s3app": child_s3_app,
        }
        value = int(rest[0]) if kind in ("reference", "pages", "bare") else rest[0]
        print(json.dumps(handlers[kind](value, rest[1])))  # type: ignore[operator]
        return
    count = 100_000 if args.quick else args.rows
    with tempfile.TemporaryDirectory(prefix="wp-bench-queries-") as tmp:
        reference_csv = os.path.join(tmp, "reference.csv")
        print(f"P9: {count:,} rows × {len(COLUMNS)} columns")
        reference = _child("reference", str(count), reference_csv)
        pages = _child("pages", str(count), os.path.join(tmp, "pages"))
        bare = _child("bare", str(count), os.path.join(tmp, "bare.csv"))
        # The object Athena would leave in S3 for these rows: the page path's evidence file, which the
        # tests show is byte for byte Athena's form.
        athena_csv = pages["path"]
        s3 = _child("s3", athena_csv, os.path.join(tmp, "s3"))
        s3_app = _child("s3app", athena_csv, os.path.join(tmp, "s3app"))
        sum_seconds, sum_digest = _sha256sum(athena_csv)
        same_bytes = pages["sha256"] == bare["sha256"] == s3["sha256"] == s3_app["sha256"] == sum_digest
    _report(count, reference, pages, bare, s3, s3_app, sum_seconds, same_bytes)


def _report(
    count: int,
    reference: dict[str, Any],
    pages: dict[str, Any],
    bare: dict[str, Any],
    s3: dict[str, Any],
    s3_app: dict[str, Any],
    sum_seconds: float,
    same_bytes: bool,
) -> None:
    page_ratio = reference["seconds"] / pages["seconds"]
    s3_ratio = sum_seconds / s3["seconds"]
    s3_app_ratio = sum_seconds / s3_app["seconds"]
    # P9's subject is the evidence itself (rows or object → CSV file, SHA-256 while writing): the store step.
    page_store_ratio = reference["seconds"] / pages["store_seconds"]
    s3_store_ratio = sum_seconds / s3_app["store_seconds"]
    store_growth = {n: r["store_peak_rss_mb"] - r["baseline_rss_mb"] for n, r in (("pages", pages), ("s3app", s3_app))}
    growth = {name: run["peak_rss_mb"] - run["baseline_rss_mb"] for name, run in (("pages", pages), ("s3app", s3_app))}
    report = {
        "code_version": _version(),
        "python": platform.python_version(),
        "rows": count,
        "csv_bytes": s3["bytes"],
        "reference_csv_writer": reference,
        "page_path_as_the_app_runs_it": pages,
        "page_path_without_django_or_analysis": bare,
        "s3_path_copy_alone": s3,
        "s3_path_as_the_app_runs_it": s3_app,
        "sha256sum_seconds": sum_seconds,
        "same_bytes_everywhere": same_bytes,
        "page_ratio": page_ratio,
        "s3_copy_ratio": s3_ratio,
        "s3_app_ratio": s3_app_ratio,
    }
    goals = [
        ("P9 page path, evidence (rows → CSV + SHA-256) ≥ 0.2 × csv.writer", page_store_ratio >= 0.2,
         f"{page_store_ratio:.2f}"),
        ("P9 S3 path, evidence (object → file + SHA-256) ≥ 0.5 × sha256sum", s3_store_ratio >= 0.5,
         f"{s3_store_ratio:.2f}"),
        ("P9 page path, evidence RSS growth in the worker ≤ 64 MB", store_growth["pages"] <= 64,
         f"{store_growth['pages']:.1f} MB"),
        ("P9 S3 path, evidence RSS growth in the worker ≤ 64 MB", store_growth["s3app"] <= 64,
         f"{store_growth['s3app']:.1f} MB"),
        ("P9 page path, evidence peak RSS without Django ≤ 64 MB", bare["peak_rss_mb"] <= 64,
         f"{bare['peak_rss_mb']:.1f} MB"),
        ("whole step with the analysis pass, page path ≥ 0.2 × csv.writer", page_ratio >= 0.2, f"{page_ratio:.2f}"),
        ("whole step with the analysis pass, S3 path ≥ 0.5 × sha256sum", s3_app_ratio >= 0.5, f"{s3_app_ratio:.2f}"),
        ("whole step peak RSS ≤ 64 MB, page path (Django+boto3 baseline alone is over)", pages["peak_rss_mb"] <= 64,
         f"{pages['peak_rss_mb']:.1f} MB"),
        ("whole step peak RSS ≤ 64 MB, S3 path (Django+boto3 baseline alone is over)", s3_app["peak_rss_mb"] <= 64,
         f"{s3_app['peak_rss_mb']:.1f} MB"),
        ("whole step RSS growth ≤ 64 MB, page path (DuckDB analysis)", growth["pages"] <= 64,
         f"{growth['pages']:.1f} MB"),
        ("whole step RSS growth ≤ 64 MB, S3 path (DuckDB analysis)", growth["s3app"] <= 64,
         f"{growth['s3app']:.1f} MB"),
        ("S3 copy alone ≥ 0.5 × sha256sum bytes/s", s3_ratio >= 0.5, f"{s3_ratio:.2f}"),
        ("identical CSV bytes and hash on every path", same_bytes, str(same_bytes)),
    ]  # fmt: skip
    mb = s3["bytes"] / 1e6
    rate = count / reference["seconds"]
    print(
        f"  reference csv.writer: {reference['seconds']:.2f} s ({rate:,.0f} rows/s, {reference['bytes'] / 1e6:.0f} MB)"
    )
    print(
        f"  reference sha256sum:  {sum_seconds:.2f} s ({mb / sum_seconds:,.0f} MB/s over {mb:.0f} MB of evidence CSV)"
    )
    for label, run in (("page path", pages), ("S3 path  ", s3_app)):
        print(
            f"  {label}:            {run['seconds']:.2f} s = store {run['store_seconds']:.2f} s + analysis "
            f"{run['analysis_seconds']:.2f} s ({count / run['seconds']:,.0f} rows/s, {mb / run['seconds']:,.0f} MB/s); "
            f"peak RSS {run['peak_rss_mb']:.1f} MB (store step {run['store_peak_rss_mb']:.1f} MB; "
            f"interpreter with Django+boto3 {run['baseline_rss_mb']:.1f} MB)"
        )
    print(
        f"  page path, no Django, no analysis: {bare['seconds']:.2f} s ({count / bare['seconds']:,.0f} rows/s); "
        f"peak RSS {bare['peak_rss_mb']:.1f} MB (interpreter with boto3 {bare['baseline_rss_mb']:.1f} MB)"
    )
    print(
        f"  S3 copy alone:        {s3['seconds']:.2f} s ({mb / s3['seconds']:,.0f} MB/s); "
        f"peak RSS {s3['peak_rss_mb']:.1f} MB (baseline {s3['baseline_rss_mb']:.1f} MB)"
    )
    for label, ok, figure in goals:
        print(f"  {'PASS' if ok else 'FAIL'}  {label}: {figure}")
    report["goals"] = {label: ok for label, ok, _ in goals}
    out = ROOT / "benchmarks" / "results"
    out.mkdir(exist_ok=True)
    (out / "queries-latest.json").write_text(json.dumps(report, indent=2, default=str) + "\n")


def _version() -> str:
    from benchmarks.common import code_version

    return code_version()


if __name__ == "__main__":
    main()
