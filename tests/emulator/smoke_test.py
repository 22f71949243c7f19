"""Smoke test of the backup-warden moto emulator (launcher + RDS extension).

    PY=$(hack/moto-venv.sh) && "$PY" tests/emulator/smoke_test.py

Starts tests/emulator/backup_warden_moto.py on a free port, drives it with boto3 (which moto
installs into its venv) and checks both the parsed results and the raw awsquery XML that the
AWS SDK for Rust will parse. Exits non-zero on the first failed check.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from typing import Any, Callable

import boto3
from botocore.exceptions import ClientError

HERE = os.path.dirname(os.path.abspath(__file__))
ACCOUNT = "123456789012"  # moto's default account
SRC, DST, OTHER = "us-east-1", "us-west-2", "eu-west-1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Emulator:
    def __init__(self) -> None:
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.log = open(os.path.join(os.environ.get("TMPDIR", "/tmp"), f"backup-warden-moto-{self.port}.log"), "w")
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "backup_warden_moto.py"), "--host", "127.0.0.1", "--port", str(self.port)],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.time() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{self.endpoint}/moto-api/backup-warden", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            if self.proc.poll() is not None or time.time() > deadline:
                raise SystemExit(f"emulator did not come up, see {self.log.name}")
            time.sleep(0.1)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        self.log.close()


class RawCapture:
    """Keeps the last raw HTTP response (status, body) of a client, errors included."""

    def __init__(self, client: Any) -> None:
        self.status = 0
        self.body = ""
        client.meta.events.register("after-call.*", self._hook)

    def _hook(self, http_response: Any, **_: Any) -> None:
        self.status = http_response.status_code
        self.body = http_response.content.decode()


checks = 0


def check(cond: bool, what: str) -> None:
    global checks
    if not cond:
        raise SystemExit(f"FAIL: {what}")
    checks += 1
    print(f"ok   {what}")


def expect_error(fn: Callable[[], Any], code: str, what: str, raw: RawCapture | None = None, status: int | None = None) -> None:
    try:
        fn()
    except ClientError as e:
        got = e.response["Error"]["Code"]
        check(got == code, f"{what}: {code} (got {got}: {e.response['Error'].get('Message')})")
        if raw is not None:
            check(raw.body.startswith("<ErrorResponse") and f"<Code>{code}</Code>" in raw.body,
                  f"{what}: awsquery <ErrorResponse> XML with <Code>{code}</Code>")
            if status is not None:
                check(raw.status == status, f"{what}: HTTP {status} (got {raw.status})")
        return
    raise SystemExit(f"FAIL: {what}: expected {code}, call succeeded")


def main() -> None:
    emu = Emulator()
    try:
        run(emu.endpoint)
    finally:
        emu.stop()
    print(f"PASS: {checks} checks")


def run(endpoint: str) -> None:
    def client(service: str, region: str) -> Any:
        return boto3.client(service, region_name=region, endpoint_url=endpoint,
                            aws_access_key_id="AKIAIOSFODNN7EXAMPLE", aws_secret_access_key="secret")

    rds_src, rds_dst, rds_other = client("rds", SRC), client("rds", DST), client("rds", OTHER)
    kms_src, kms_dst = client("kms", SRC), client("kms", DST)
    raw_src, raw_dst, raw_other = RawCapture(rds_src), RawCapture(rds_dst), RawCapture(rds_other)

    # Other services keep working.
    check(client("sts", SRC).get_caller_identity()["Account"] == ACCOUNT, "STS GetCallerIdentity")
    s3 = client("s3", SRC)
    s3.create_bucket(Bucket="bw-smoke")
    check([b["Name"] for b in s3.list_buckets()["Buckets"]] == ["bw-smoke"], "S3 CreateBucket/ListBuckets")

    def create_db(name: str, region_client: Any = rds_src, **kw: Any) -> dict:
        args = dict(DBInstanceIdentifier=name, Engine="postgres", DBInstanceClass="db.t3.micro",
                    AllocatedStorage=20, MasterUsername="admin", MasterUserPassword="password123",
                    BackupRetentionPeriod=1)
        args.update(kw)
        return region_client.create_db_instance(**args)["DBInstance"]

    source = create_db("src")
    other = create_db("other", BackupRetentionPeriod=0)
    src_arn = source["DBInstanceArn"]
    check(source["DbiResourceId"] != other["DbiResourceId"], "DbiResourceId is unique per instance")
    check(re.fullmatch(r"db-[A-Z2-7]{26}", source["DbiResourceId"]) is not None, "DbiResourceId looks like AWS's")
    described = rds_src.describe_db_instances(DBInstanceIdentifier="src")["DBInstances"][0]
    check("LatestRestorableTime" in described, "DescribeDBInstances returns LatestRestorableTime")
    check(not described.get("DBInstanceAutomatedBackupsReplications"), "no replications before start")

    key = kms_dst.create_key(Description="backup-warden replica key")["KeyMetadata"]
    kms_dst.create_alias(AliasName="alias/bw-replica", TargetKeyId=key["KeyId"])
    disabled = kms_dst.create_key(Description="disabled")["KeyMetadata"]
    kms_dst.disable_key(KeyId=disabled["KeyId"])
    src_region_key = kms_src.create_key(Description="wrong region")["KeyMetadata"]
    km = kms_dst.describe_key(KeyId=key["KeyId"])["KeyMetadata"]
    print(f"info KMS DescribeKey: KeySpec={km.get('KeySpec')} KeyState={km.get('KeyState')} KeyUsage={km.get('KeyUsage')}")

    sources = rds_dst.describe_source_regions()["SourceRegions"]
    names = [r["RegionName"] for r in sources]
    check(SRC in names and DST not in names and all(r["SupportsDBInstanceAutomatedBackupsReplication"] for r in sources),
          f"DescribeSourceRegions in {DST} lists {SRC} (not itself)")
    check([r["RegionName"] for r in rds_dst.describe_source_regions(RegionName=SRC)["SourceRegions"]] == [SRC],
          "DescribeSourceRegions RegionName filter")

    # --- Start: failures -------------------------------------------------------------------
    expect_error(lambda: rds_src.start_db_instance_automated_backups_replication(SourceDBInstanceArn=src_arn, KmsKeyId=src_region_key["Arn"]),
                 "InvalidParameterValue", "start in the source Region", raw_src, 400)
    expect_error(lambda: rds_dst.start_db_instance_automated_backups_replication(SourceDBInstanceArn=src_arn.replace(":db:src", ":db:nope"), KmsKeyId=key["Arn"]),
                 "DBInstanceNotFound", "start for a missing source", raw_dst, 404)
    expect_error(lambda: rds_dst.start_db_instance_automated_backups_replication(SourceDBInstanceArn=src_arn, KmsKeyId=key["Arn"].replace(key["KeyId"], "00000000-0000-0000-0000-000000000000")),
                 "KMSKeyNotAccessibleFault", "start with a missing KMS key", raw_dst, 400)
    expect_error(lambda: rds_dst.start_db_instance_automated_backups_replication(SourceDBInstanceArn=src_arn, KmsKeyId="alias/does-not-exist"),
                 "KMSKeyNotAccessibleFault", "start with a missing KMS alias")
    expect_error(lambda: rds_dst.start_db_instance_automated_backups_replication(SourceDBInstanceArn=src_arn, KmsKeyId=disabled["Arn"]),
                 "KMSKeyNotAccessibleFault", "start with a disabled KMS key")
    expect_error(lambda: rds_dst.start_db_instance_automated_backups_replication(SourceDBInstanceArn=src_arn, KmsKeyId=src_region_key["Arn"]),
                 "KMSKeyNotAccessibleFault", "start with a key of another Region")
    expect_error(lambda: rds_dst.start_db_instance_automated_backups_replication(SourceDBInstanceArn=other["DBInstanceArn"], KmsKeyId=key["Arn"]),
                 "InvalidDBInstanceState", "start for a source without automated backups")
    encrypted = create_db("enc", StorageEncrypted=True)
    expect_error(lambda: rds_dst.start_db_instance_automated_backups_replication(SourceDBInstanceArn=encrypted["DBInstanceArn"]),
                 "InvalidParameterValue", "start for an encrypted source without KmsKeyId")
    check(not rds_dst.describe_db_instance_automated_backups()["DBInstanceAutomatedBackups"], "failed starts left nothing behind")

    # --- Start ---------------------------------------------------------------------------------
    started = rds_dst.start_db_instance_automated_backups_replication(
        SourceDBInstanceArn=src_arn, BackupRetentionPeriod=3, KmsKeyId=key["Arn"])["DBInstanceAutomatedBackup"]
    xml = raw_dst.body
    check("<StartDBInstanceAutomatedBackupsReplicationResponse" in xml
          and "<StartDBInstanceAutomatedBackupsReplicationResult><DBInstanceAutomatedBackup>" in xml,
          "Start XML: result wrapper + DBInstanceAutomatedBackup")
    replica_arn = started["DBInstanceAutomatedBackupsArn"]
    check(re.fullmatch(rf"arn:aws:rds:{DST}:{ACCOUNT}:auto-backup:ab-[a-z0-9]{{39}}", replica_arn) is not None,
          f"replica ARN is in the destination Region ({replica_arn})")
    check(started["Status"] == "pending", "Start answers Status=pending (as AWS does)")
    check(started["DBInstanceArn"] == src_arn and started["Region"] == SRC
          and started["DbiResourceId"] == source["DbiResourceId"], "Start: DBInstanceArn/Region/DbiResourceId of the source")
    check(started["KmsKeyId"] == key["Arn"] and started["BackupRetentionPeriod"] == 3, "Start: KmsKeyId is the key ARN, retention 3")

    # --- Describe in the destination ------------------------------------------------------------
    backups = rds_dst.describe_db_instance_automated_backups()["DBInstanceAutomatedBackups"]
    xml = raw_dst.body
    check(len(backups) == 1, "destination lists exactly the replica")
    b = backups[0]
    check(b["Status"] == "replicating", "destination: Status=replicating")
    check(b["DBInstanceAutomatedBackupsArn"] == replica_arn and b["DBInstanceArn"] == src_arn
          and b["Region"] == SRC and b["DBInstanceIdentifier"] == "src", "destination: ARN, source ARN, Region, identifier")
    check(b["KmsKeyId"] == key["Arn"] and b["Encrypted"] is True and b["BackupRetentionPeriod"] == 3,
          "destination: KmsKeyId=key ARN, Encrypted, BackupRetentionPeriod=3")
    check(b["Engine"] == "postgres" and b["AllocatedStorage"] == 20, "destination: Engine/AllocatedStorage")
    rw = b.get("RestoreWindow") or {}
    check("EarliestTime" in rw and "LatestTime" in rw and rw["EarliestTime"] <= rw["LatestTime"], "destination: RestoreWindow")
    check("<DBInstanceAutomatedBackups><DBInstanceAutomatedBackup>" in xml
          and "<RestoreWindow><EarliestTime>" in xml, "Describe XML: list member DBInstanceAutomatedBackup, RestoreWindow")
    for kw in ({"DbiResourceId": source["DbiResourceId"]}, {"DBInstanceIdentifier": "src"},
               {"DBInstanceAutomatedBackupsArn": replica_arn},
               {"Filters": [{"Name": "status", "Values": ["replicating"]}]},
               {"Filters": [{"Name": "db-instance-id", "Values": [src_arn]}]}):
        got = rds_dst.describe_db_instance_automated_backups(**kw)["DBInstanceAutomatedBackups"]
        check([g["DBInstanceAutomatedBackupsArn"] for g in got] == [replica_arn], f"destination describe by {list(kw)[0]} {kw.get('Filters', '')}")
    expect_error(lambda: rds_dst.describe_db_instance_automated_backups(DbiResourceId="db-NOPE"),
                 "DBInstanceAutomatedBackupNotFound", "describe an unknown DbiResourceId", raw_dst, 404)

    # --- Source Region ---------------------------------------------------------------------------
    local = rds_src.describe_db_instance_automated_backups()["DBInstanceAutomatedBackups"]
    check(all(x["DBInstanceAutomatedBackupsArn"] != replica_arn for x in local), "source Region does not list the replica")
    check(all(f":{SRC}:" in x["DBInstanceAutomatedBackupsArn"] for x in local), "source Region lists only its own backups")
    mine = [x for x in local if x["DBInstanceIdentifier"] == "src"]
    check(len(mine) == 1 and mine[0]["Status"] == "active" and mine[0]["BackupRetentionPeriod"] == 1,
          "source Region: local automated backup of src is active, retention 1")
    check([r["DBInstanceAutomatedBackupsArn"] for r in mine[0].get("DBInstanceAutomatedBackupsReplications", [])] == [replica_arn],
          "source Region: local automated backup lists the replication")
    check(not [x for x in local if x["DBInstanceIdentifier"] == "other"], "retention 0 instance has no automated backup")
    inst = rds_src.describe_db_instances(DBInstanceIdentifier="src")["DBInstances"][0]
    xml = raw_src.body
    check([r["DBInstanceAutomatedBackupsArn"] for r in inst.get("DBInstanceAutomatedBackupsReplications", [])] == [replica_arn],
          "DescribeDBInstances: source lists the replication")
    check("<DBInstanceAutomatedBackupsReplications><DBInstanceAutomatedBackupsReplication><DBInstanceAutomatedBackupsArn>"
          f"{replica_arn}</DBInstanceAutomatedBackupsArn></DBInstanceAutomatedBackupsReplication></DBInstanceAutomatedBackupsReplications>" in xml,
          "DescribeDBInstances XML: DBInstanceAutomatedBackupsReplication members")

    # --- Second start, delete while replicating --------------------------------------------------
    expect_error(lambda: rds_dst.start_db_instance_automated_backups_replication(SourceDBInstanceArn=src_arn, KmsKeyId=key["Arn"]),
                 "InvalidDBInstanceState", "second start to the same Region", raw_dst, 400)
    expect_error(lambda: rds_other.start_db_instance_automated_backups_replication(SourceDBInstanceArn=src_arn),
                 "InvalidDBInstanceState", "second start to another Region")
    check(not rds_other.describe_db_instance_automated_backups()["DBInstanceAutomatedBackups"], "failed start left nothing in the other Region")
    expect_error(lambda: rds_dst.delete_db_instance_automated_backup(DBInstanceAutomatedBackupsArn=replica_arn),
                 "InvalidDBInstanceAutomatedBackupState", "delete while replicating", raw_dst, 400)
    expect_error(lambda: rds_src.delete_db_instance_automated_backup(DbiResourceId=source["DbiResourceId"]),
                 "InvalidDBInstanceAutomatedBackupState", "delete the active local automated backup")

    # --- Stop --------------------------------------------------------------------------------------
    expect_error(lambda: rds_other.stop_db_instance_automated_backups_replication(SourceDBInstanceArn=src_arn),
                 "InvalidDBInstanceState", "stop in a Region that is not replicating")
    stopped = rds_dst.stop_db_instance_automated_backups_replication(SourceDBInstanceArn=src_arn)["DBInstanceAutomatedBackup"]
    check("<StopDBInstanceAutomatedBackupsReplicationResult><DBInstanceAutomatedBackup>" in raw_dst.body, "Stop XML: result wrapper")
    check(stopped["DBInstanceAutomatedBackupsArn"] == replica_arn, "Stop returns the replica")
    b = rds_dst.describe_db_instance_automated_backups(DBInstanceAutomatedBackupsArn=replica_arn)["DBInstanceAutomatedBackups"][0]
    check(b["Status"] == "retained" and b["KmsKeyId"] == key["Arn"], "after stop: retained, key kept")
    inst = rds_src.describe_db_instances(DBInstanceIdentifier="src")["DBInstances"][0]
    check(not inst.get("DBInstanceAutomatedBackupsReplications"), "after stop: source no longer lists the replication")
    expect_error(lambda: rds_dst.stop_db_instance_automated_backups_replication(SourceDBInstanceArn=src_arn),
                 "InvalidDBInstanceState", "second stop")

    # --- Delete --------------------------------------------------------------------------------------
    deleted = rds_dst.delete_db_instance_automated_backup(DBInstanceAutomatedBackupsArn=replica_arn)["DBInstanceAutomatedBackup"]
    check("<DeleteDBInstanceAutomatedBackupResult><DBInstanceAutomatedBackup>" in raw_dst.body, "Delete XML: result wrapper")
    check(deleted["Status"] == "deleting" and deleted["DBInstanceAutomatedBackupsArn"] == replica_arn, "Delete answers Status=deleting")
    check(not rds_dst.describe_db_instance_automated_backups()["DBInstanceAutomatedBackups"], "after delete: destination empty")
    expect_error(lambda: rds_dst.delete_db_instance_automated_backup(DBInstanceAutomatedBackupsArn=replica_arn),
                 "DBInstanceAutomatedBackupNotFound", "delete twice", raw_dst, 404)

    # --- Alias, restart after stop (resumes the retained replica), delete by DbiResourceId ------------
    again = rds_dst.start_db_instance_automated_backups_replication(SourceDBInstanceArn=src_arn, KmsKeyId="alias/bw-replica")["DBInstanceAutomatedBackup"]
    check(again["KmsKeyId"] == key["Arn"] and again["BackupRetentionPeriod"] == 7, "start with an alias: key ARN, default retention 7")
    rds_dst.stop_db_instance_automated_backups_replication(SourceDBInstanceArn=src_arn)
    resumed = rds_dst.start_db_instance_automated_backups_replication(SourceDBInstanceArn=src_arn, KmsKeyId=key["KeyId"])["DBInstanceAutomatedBackup"]
    check(resumed["DBInstanceAutomatedBackupsArn"] == again["DBInstanceAutomatedBackupsArn"], "restart after stop resumes the retained replica")
    rds_dst.stop_db_instance_automated_backups_replication(SourceDBInstanceArn=src_arn)
    gone = rds_dst.delete_db_instance_automated_backup(DbiResourceId=source["DbiResourceId"])["DBInstanceAutomatedBackup"]
    check(gone["Status"] == "deleting", "delete by DbiResourceId")

    # --- Deleting the source retains its replica ---------------------------------------------------
    doomed = create_db("doomed")
    rds_dst.start_db_instance_automated_backups_replication(SourceDBInstanceArn=doomed["DBInstanceArn"], KmsKeyId=key["Arn"])
    rds_src.delete_db_instance(DBInstanceIdentifier="doomed", SkipFinalSnapshot=True)
    b = rds_dst.describe_db_instance_automated_backups(DBInstanceIdentifier="doomed")["DBInstanceAutomatedBackups"][0]
    check(b["Status"] == "retained", "source deleted: replica retained")
    rds_dst.delete_db_instance_automated_backup(DBInstanceAutomatedBackupsArn=b["DBInstanceAutomatedBackupsArn"])
    kept = create_db("kept")
    rds_src.delete_db_instance(DBInstanceIdentifier="kept", SkipFinalSnapshot=True, DeleteAutomatedBackups=False)
    b = rds_src.describe_db_instance_automated_backups(DBInstanceIdentifier="kept")["DBInstanceAutomatedBackups"][0]
    check(b["Status"] == "retained", "DeleteAutomatedBackups=false: local automated backup retained")
    rds_src.delete_db_instance_automated_backup(DbiResourceId=kept["DbiResourceId"])

    # --- ModifyDBInstance retention 0 removes the local automated backup -------------------------------
    create_db("shrink", BackupRetentionPeriod=5)
    modified = rds_src.modify_db_instance(DBInstanceIdentifier="shrink", BackupRetentionPeriod=0, ApplyImmediately=True)["DBInstance"]
    print(f"info ModifyDBInstance BackupRetentionPeriod=0 -> {modified['BackupRetentionPeriod']}, PendingModifiedValues={modified.get('PendingModifiedValues')}")
    expect_error(lambda: rds_src.describe_db_instance_automated_backups(DBInstanceIdentifier="shrink"),
                 "DBInstanceAutomatedBackupNotFound", "retention 0 after modify: no automated backup")

    # --- Quota (20 per destination Region) and pagination --------------------------------------------
    arns = []
    for i in range(21):
        arns.append(create_db(f"q{i:02d}")["DBInstanceArn"])
    for arn in arns[:20]:
        rds_dst.start_db_instance_automated_backups_replication(SourceDBInstanceArn=arn, KmsKeyId=key["Arn"])
    expect_error(lambda: rds_dst.start_db_instance_automated_backups_replication(SourceDBInstanceArn=arns[20], KmsKeyId=key["Arn"]),
                 "DBInstanceAutomatedBackupQuotaExceeded", "21st replication into one Region", raw_dst, 400)
    expect_error(lambda: rds_dst.describe_db_instance_automated_backups(MaxRecords=10),
                 "InvalidParameterValue", "MaxRecords below 20")
    page1 = rds_src.describe_db_instance_automated_backups(MaxRecords=20)
    page2 = rds_src.describe_db_instance_automated_backups(MaxRecords=20, Marker=page1["Marker"])
    total = len(page1["DBInstanceAutomatedBackups"]) + len(page2["DBInstanceAutomatedBackups"])
    check(len(page1["DBInstanceAutomatedBackups"]) == 20 and "Marker" in page1 and "Marker" not in page2 and total == 23,
          f"pagination with MaxRecords/Marker ({total} local automated backups in {SRC})")
    paginated = [x for p in rds_dst.get_paginator("describe_db_instance_automated_backups").paginate(PaginationConfig={"PageSize": 20})
                 for x in p["DBInstanceAutomatedBackups"]]
    check(len(paginated) == 20 and all(x["Status"] == "replicating" for x in paginated), "boto3 paginator over 20 replicas")

    # --- /moto-api/reset drops the extension's state with moto's -----------------------------------
    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST"), timeout=10).close()
    check(not rds_dst.describe_db_instance_automated_backups()["DBInstanceAutomatedBackups"]
          and not rds_src.describe_db_instance_automated_backups()["DBInstanceAutomatedBackups"], "/moto-api/reset clears replicas")


if __name__ == "__main__":
    main()
