"""Smoke test of the backup-warden moto emulator (launcher + RDS extension).

    PY=$(hack/moto-venv.sh) && "$PY" tests/emulator/smoke_test.py

Starts tests/emulator/backup_warden_moto.py on a free port, drives it with boto3 (which moto
installs into its venv) and checks both the parsed results and the raw awsquery XML that the
AWS SDK for Rust will parse. Exits non-zero on the first failed check.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from typing import Any, Callable

import boto3
from botocore.exceptions import ClientError

HERE = os.path.dirname(os.path.abspath(__file__))
ACCOUNT = "123456789012"  # moto's default account
SRC, DST, OTHER = "us-east-1", "us-west-2", "eu-west-1"
PAG = "eu-central-1"  # the pagination section's Region (250 instances)
MAINTENANCE = "/moto-api/backup-warden/maintenance"
QUOTA = "/moto-api/backup-warden/quota"
OTHER_ACCOUNT = "210987654321"  # reached through STS AssumeRole (moto switches accounts)
QDST = "ap-southeast-2"  # the quota section's destination Region
KEY_AGE = "/moto-api/backup-warden/kms-key-age"
KDST = "ca-central-1"  # the KMS section's Region
THOME, TOTHER = "eu-west-2", "sa-east-1"  # the audit trail section's home and other Region
RDST = "ap-northeast-1"  # the restore section's destination Region
STATE_MANAGER = "/moto-api/state-manager"  # moto's own transition settings
RESTORE_MODEL = "rds::restored-db-instance"  # rds_restore's model name there


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Emulator:
    def __init__(self, state_file: str | None = None, port: int | None = None, env: dict[str, str] | None = None) -> None:
        extra = dict(env or {})
        if state_file:
            extra["BACKUP_WARDEN_MOTO_STATE_FILE"] = state_file
        self.port = port or free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.log = open(os.path.join(os.environ.get("TMPDIR", "/tmp"), f"backup-warden-moto-{self.port}.log"), "w")
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "backup_warden_moto.py"), "--host", "127.0.0.1", "--port", str(self.port)],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **extra} if extra else None,
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
    restart_keeps_state()
    restore_knobs_and_restart()
    print(f"PASS: {checks} checks")


def restart_keeps_state() -> None:
    """With a state file, instances, replications and keys outlive a SIGTERM restart."""
    with tempfile.TemporaryDirectory() as tmp:
        state = os.path.join(tmp, "state.pickle")
        emu = Emulator(state_file=state)

        base = dict(endpoint_url=emu.endpoint, aws_access_key_id="AKIAIOSFODNN7EXAMPLE", aws_secret_access_key="secret")
        # Work in another account through AssumeRole, as the tests do.
        creds = boto3.client("sts", region_name=SRC, **base).assume_role(
            RoleArn="arn:aws:iam::210987654321:role/backup-warden", RoleSessionName="smoke")["Credentials"]

        def client(service: str, region: str) -> Any:
            return boto3.client(service, region_name=region, endpoint_url=emu.endpoint,
                                aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds["SecretAccessKey"],
                                aws_session_token=creds["SessionToken"])

        try:
            arn = client("rds", SRC).create_db_instance(
                DBInstanceIdentifier="kept", Engine="postgres", DBInstanceClass="db.t3.micro", AllocatedStorage=20,
                MasterUsername="admin", MasterUserPassword="password123", BackupRetentionPeriod=7)["DBInstance"]["DBInstanceArn"]
            key = client("kms", DST).create_key(Tags=[{"TagKey": "managed-by", "TagValue": "backup-warden"}])["KeyMetadata"]
            client("kms", DST).create_alias(AliasName="alias/kept", TargetKeyId=key["KeyId"])
            client("rds", DST).start_db_instance_automated_backups_replication(SourceDBInstanceArn=arn, KmsKeyId=key["Arn"])
            client("s3", THOME).create_bucket(Bucket="bw-kept-trail-logs", CreateBucketConfiguration={"LocationConstraint": THOME})
            client("s3", THOME).put_bucket_lifecycle_configuration(Bucket="bw-kept-trail-logs", LifecycleConfiguration={
                "Rules": [{"ID": "kept", "Filter": {"Prefix": "AWSLogs/"}, "Status": "Enabled", "Expiration": {"Days": 400}}]})
            trail_arn = client("cloudtrail", THOME).create_trail(Name="kept", S3BucketName="bw-kept-trail-logs",
                                                                 IsMultiRegionTrail=True)["TrailARN"]
            client("cloudtrail", THOME).start_logging(Name="kept")
            client("logs", THOME).create_log_group(logGroupName="/aws/cloudtrail/kept")
            client("logs", THOME).put_retention_policy(logGroupName="/aws/cloudtrail/kept", retentionInDays=400)
        finally:
            emu.stop()
        check(os.path.exists(state), "state file: written on SIGTERM")
        emu = Emulator(state_file=state, port=emu.port)
        try:
            check(client("sts", SRC).get_caller_identity()["Account"] == "210987654321",
                  "state file: credentials from AssumeRole keep their account")
            check([d["DBInstanceIdentifier"] for d in client("rds", SRC).describe_db_instances()["DBInstances"]] == ["kept"],
                  "state file: the instance outlives a restart")
            replicas = client("rds", DST).describe_db_instance_automated_backups()["DBInstanceAutomatedBackups"]
            check([(b["DBInstanceArn"], b["KmsKeyId"]) for b in replicas] == [(arn, key["Arn"])],
                  "state file: the replication outlives a restart")
            check([a["TargetKeyId"] for a in client("kms", DST).list_aliases()["Aliases"] if a["AliasName"] == "alias/kept"]
                  == [key["KeyId"]], "state file: the key and its alias outlive a restart")
            tagged = client("resourcegroupstaggingapi", DST).get_resources(ResourceTypeFilters=["kms:key"])
            check([r["ResourceARN"] for r in tagged["ResourceTagMappingList"]] == [key["Arn"]],
                  "state file: the key's tags outlive a restart")
            check([t["TrailARN"] for t in client("cloudtrail", TOTHER).describe_trails(trailNameList=[trail_arn])["trailList"]]
                  == [trail_arn] and client("cloudtrail", THOME).get_trail_status(Name="kept")["IsLogging"] is True,
                  "state file: the trail outlives a restart, still logging")
            check(client("s3", THOME).get_bucket_lifecycle_configuration(Bucket="bw-kept-trail-logs")["Rules"][0]["ID"] == "kept"
                  and client("s3", SRC).get_bucket_location(Bucket="bw-kept-trail-logs")["LocationConstraint"] == THOME,
                  "state file: the trail's bucket and its lifecycle outlive a restart")
            expect_error(lambda: client("s3", SRC).create_bucket(Bucket="bw-kept-trail-logs"), "BucketAlreadyOwnedByYou",
                         "state file: the bucket name stays taken")
            check(client("logs", THOME).describe_log_groups(logGroupNamePrefix="/aws/cloudtrail/kept")["logGroups"][0]
                  .get("retentionInDays") == 400, "state file: the log group and its retention outlive a restart")
        finally:
            emu.stop()


def restore_knobs_and_restart() -> None:
    """BACKUP_WARDEN_MOTO_RESTORE_SECONDS and BACKUP_WARDEN_MOTO_REPLICATION_PENDING_SECONDS
    take effect at server start: a pending replica can't be restored from, and a restore
    still creating outlives a restart with the state file."""
    knobs = {"BACKUP_WARDEN_MOTO_RESTORE_SECONDS": "600", "BACKUP_WARDEN_MOTO_REPLICATION_PENDING_SECONDS": "600"}
    with tempfile.TemporaryDirectory() as tmp:
        state = os.path.join(tmp, "state.pickle")
        emu = Emulator(state_file=state, env=knobs)

        def client(service: str, region: str) -> Any:
            return boto3.client(service, region_name=region, endpoint_url=emu.endpoint,
                                aws_access_key_id="AKIAIOSFODNN7EXAMPLE", aws_secret_access_key="secret")

        def drill() -> dict:
            return client("rds", DST).describe_db_instances(DBInstanceIdentifier="env-drill")["DBInstances"][0]

        try:
            status, body = post_json(emu.endpoint, f"{STATE_MANAGER}/get-transition?model_name={RESTORE_MODEL}", method="GET")
            check(status == 200 and body == {"progression": "time", "seconds": 600},
                  f"BACKUP_WARDEN_MOTO_RESTORE_SECONDS=600: {RESTORE_MODEL} becomes available after 600 s ({body})")
            rds = client("rds", DST)
            raw = RawCapture(rds)
            source = new_db(client("rds", SRC), "env-src")
            arn = rds.start_db_instance_automated_backups_replication(
                SourceDBInstanceArn=source["DBInstanceArn"])["DBInstanceAutomatedBackup"]["DBInstanceAutomatedBackupsArn"]
            backup = rds.describe_db_instance_automated_backups()["DBInstanceAutomatedBackups"][0]
            check(backup["Status"] == "pending" and not (backup.get("RestoreWindow") or {}).get("LatestTime"),
                  "a pending replica has no latest restorable time yet")
            expect_error(lambda: rds.restore_db_instance_to_point_in_time(
                SourceDBInstanceAutomatedBackupsArn=arn, UseLatestRestorableTime=True, TargetDBInstanceIdentifier="env-drill"),
                "InvalidDBInstanceAutomatedBackupState", "restore from a pending replica", raw, 400)
            rds.stop_db_instance_automated_backups_replication(SourceDBInstanceArn=source["DBInstanceArn"])
            rds.restore_db_instance_to_point_in_time(
                SourceDBInstanceAutomatedBackupsArn=arn, UseLatestRestorableTime=True, TargetDBInstanceIdentifier="env-drill",
                Tags=[{"Key": "backupwarden.io/drill", "Value": "env"}])
            check(drill()["DBInstanceStatus"] == "creating" and "Endpoint" not in drill(),
                  "BACKUP_WARDEN_MOTO_RESTORE_SECONDS=600: the restored instance is creating, no Endpoint")
        finally:
            emu.stop()
        emu = Emulator(state_file=state, port=emu.port, env=knobs)
        try:
            d = drill()
            check(d["DBInstanceStatus"] == "creating" and d["TagList"] == [{"Key": "backupwarden.io/drill", "Value": "env"}],
                  "state file: a restore still creating outlives a restart, still creating")
            status, _ = post_json(emu.endpoint, f"{STATE_MANAGER}/set-transition",
                                  {"model_name": RESTORE_MODEL, "transition": {"progression": "immediate"}})
            check(status == 201 and drill()["DBInstanceStatus"] == "available" and drill()["Endpoint"]["Port"] == 5432,
                  "after the restart, set-transition immediate: available, with an Endpoint")
            client("rds", DST).delete_db_instance(DBInstanceIdentifier="env-drill", SkipFinalSnapshot=True,
                                                  DeleteAutomatedBackups=True)
            check(not client("rds", DST).describe_db_instances()["DBInstances"], "the restored instance deleted after the restart")
        finally:
            emu.stop()


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

    # The sections below start from the state /moto-api/reset left.
    check_backup_retention(endpoint, client)
    check_aws_backup(client)
    check_pagination(client)
    check_instance_facts(client)
    check_destination_listing(client)
    check_restore(endpoint, client)
    # Last: it ends with /moto-api/reset.
    check_replication_quota(endpoint, client)
    check_kms_keys(endpoint, client)
    check_audit_trail(client)


def post_json(endpoint: str, path: str, body: Any = None, raw: bytes | None = None, method: str = "POST") -> tuple[int, Any]:
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    req = urllib.request.Request(f"{endpoint}{path}", data=data, method=method,
                                 headers={"Content-Type": "application/json"} if data is not None else {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def new_db(rds: Any, name: str, **kw: Any) -> dict:
    args = dict(DBInstanceIdentifier=name, Engine="postgres", DBInstanceClass="db.t3.micro",
                AllocatedStorage=20, MasterUsername="admin", MasterUserPassword="password123",
                BackupRetentionPeriod=1)
    args.update(kw)
    return rds.create_db_instance(**args)["DBInstance"]


def pending_xml(value: int) -> str:
    return f"<PendingModifiedValues><BackupRetentionPeriod>{value}</BackupRetentionPeriod></PendingModifiedValues>"


def check_backup_retention(endpoint: str, client: Callable[[str, str], Any]) -> None:
    """ModifyDBInstance BackupRetentionPeriod / ApplyImmediately, PendingModifiedValues and the
    test-only maintenance endpoint."""
    rds, rds_other = client("rds", SRC), client("rds", OTHER)
    raw = RawCapture(rds)

    def describe(name: str) -> dict:
        return rds.describe_db_instances(DBInstanceIdentifier=name)["DBInstances"][0]

    def automated_snapshots(name: str) -> list[str]:
        return [s["DBSnapshotIdentifier"] for s in
                rds.describe_db_snapshots(DBInstanceIdentifier=name, SnapshotType="automated")["DBSnapshots"]]

    def local_backup(name: str) -> dict | None:
        try:
            return rds.describe_db_instance_automated_backups(DBInstanceIdentifier=name)["DBInstanceAutomatedBackups"][0]
        except ClientError as e:
            assert e.response["Error"]["Code"] == "DBInstanceAutomatedBackupNotFound", e
            return None

    # --- Created with backups disabled ---------------------------------------------------------
    new_db(rds, "bk0", BackupRetentionPeriod=0)
    d = describe("bk0")
    check(d["BackupRetentionPeriod"] == 0 and "PendingModifiedValues" not in d and "<PendingModifiedValues" not in raw.body,
          "retention 0 instance: no PendingModifiedValues element")
    check("LatestRestorableTime" not in d, "retention 0 instance: no LatestRestorableTime (no point-in-time restore)")
    check(automated_snapshots("bk0") == [], "retention 0 instance: no automated snapshot")
    check(local_backup("bk0") is None, "retention 0 instance: no automated backup")

    # --- 0 -> 7 without ApplyImmediately: pending until the maintenance window ----------------
    m = rds.modify_db_instance(DBInstanceIdentifier="bk0", BackupRetentionPeriod=7)["DBInstance"]
    check(m["BackupRetentionPeriod"] == 0 and m.get("PendingModifiedValues") == {"BackupRetentionPeriod": 7},
          "modify 0->7 (ApplyImmediately default false): response keeps 0, PendingModifiedValues 7")
    check(re.search(r"<ModifyDBInstanceResult><DBInstance>.*" + pending_xml(7) + r".*</DBInstance></ModifyDBInstanceResult>", raw.body) is not None,
          "ModifyDBInstance XML: PendingModifiedValues/BackupRetentionPeriod inside DBInstance")
    d = describe("bk0")
    check(d["BackupRetentionPeriod"] == 0 and d.get("PendingModifiedValues") == {"BackupRetentionPeriod": 7}
          and pending_xml(7) in raw.body, "DescribeDBInstances: BackupRetentionPeriod 0, PendingModifiedValues 7 (XML too)")
    check(local_backup("bk0") is None and automated_snapshots("bk0") == [], "pending enable: no automated backup yet")

    # --- Maintenance endpoint -------------------------------------------------------------------
    status, body = post_json(endpoint, MAINTENANCE, {"region": SRC, "db_instance_identifier": "bk0"})
    check(status == 200 and body == {"applied": [{"account_id": ACCOUNT, "region": SRC, "db_instance_identifier": "bk0",
                                                  "applied": {"BackupRetentionPeriod": {"from": 0, "to": 7}}}]},
          f"POST {MAINTENANCE} {{region, db_instance_identifier}}: 200, lists the applied change")
    d = describe("bk0")
    check(d["BackupRetentionPeriod"] == 7 and "PendingModifiedValues" not in d and "<PendingModifiedValues" not in raw.body,
          "after maintenance: BackupRetentionPeriod 7, nothing pending")
    check("LatestRestorableTime" in d, "after maintenance: LatestRestorableTime")
    b = local_backup("bk0")
    check(b is not None and b["Status"] == "active" and b["BackupRetentionPeriod"] == 7,
          "after maintenance: local automated backup active, retention 7")
    check(len(automated_snapshots("bk0")) == 1 and automated_snapshots("bk0")[0].startswith("rds:bk0-"),
          "after maintenance: RDS took an automated snapshot (rds:bk0-...)")
    status, body = post_json(endpoint, MAINTENANCE, {"db_instance_identifier": "bk0"})
    check(status == 200 and body == {"applied": []}, "maintenance again: nothing to apply")

    # --- Non-zero to non-zero applies at once ----------------------------------------------------
    m = rds.modify_db_instance(DBInstanceIdentifier="bk0", BackupRetentionPeriod=10)["DBInstance"]
    check(m["BackupRetentionPeriod"] == 10 and "PendingModifiedValues" not in m, "modify 7->10 without ApplyImmediately: applied at once")

    # --- N -> 0 pending, then applied by a later ApplyImmediately ------------------------------
    m = rds.modify_db_instance(DBInstanceIdentifier="bk0", BackupRetentionPeriod=0)["DBInstance"]
    check(m["BackupRetentionPeriod"] == 10 and m.get("PendingModifiedValues") == {"BackupRetentionPeriod": 0}
          and pending_xml(0) in raw.body, "modify 10->0 without ApplyImmediately: pending 0 (XML <BackupRetentionPeriod>0)")
    check((local_backup("bk0") or {}).get("Status") == "active", "pending disable: automated backup still active")
    m = rds.modify_db_instance(DBInstanceIdentifier="bk0", DeletionProtection=False, ApplyImmediately=True)["DBInstance"]
    check(m["BackupRetentionPeriod"] == 0 and "PendingModifiedValues" not in m,
          "ApplyImmediately applies the earlier pending change (\"and any pending modifications\")")
    check(local_backup("bk0") is None and automated_snapshots("bk0") == [] and "LatestRestorableTime" not in describe("bk0"),
          "disabling backups deletes the automated backups and snapshots")

    # --- 0 -> 5 with ApplyImmediately ---------------------------------------------------------------
    m = rds.modify_db_instance(DBInstanceIdentifier="bk0", BackupRetentionPeriod=5, ApplyImmediately=True)["DBInstance"]
    check(m["BackupRetentionPeriod"] == 5 and "PendingModifiedValues" not in m, "modify 0->5 with ApplyImmediately: applied at once")
    check((local_backup("bk0") or {}).get("Status") == "active" and len(automated_snapshots("bk0")) == 1,
          "enabled with ApplyImmediately: automated backup active, automated snapshot taken")
    m = rds.modify_db_instance(DBInstanceIdentifier="bk0", BackupRetentionPeriod=0)["DBInstance"]
    m = rds.modify_db_instance(DBInstanceIdentifier="bk0", BackupRetentionPeriod=5)["DBInstance"]
    check(m["BackupRetentionPeriod"] == 5 and "PendingModifiedValues" not in m, "a request for the current value drops the pending change")

    # --- Maintenance without a body: every Region ----------------------------------------------
    new_db(rds, "bk1", BackupRetentionPeriod=0)
    new_db(rds_other, "bk2", BackupRetentionPeriod=3)
    rds.modify_db_instance(DBInstanceIdentifier="bk1", BackupRetentionPeriod=2)
    rds_other.modify_db_instance(DBInstanceIdentifier="bk2", BackupRetentionPeriod=0)
    status, body = post_json(endpoint, MAINTENANCE)
    got = sorted((a["region"], a["db_instance_identifier"], a["applied"]["BackupRetentionPeriod"]["to"]) for a in body["applied"])
    check(status == 200 and got == [(OTHER, "bk2", 0), (SRC, "bk1", 2)], f"POST {MAINTENANCE} without a body: every Region ({got})")
    check(rds_other.describe_db_instances(DBInstanceIdentifier="bk2")["DBInstances"][0]["BackupRetentionPeriod"] == 0
          and describe("bk1")["BackupRetentionPeriod"] == 2, "maintenance applied 3->0 and 0->2")

    # --- Endpoint and parameter errors ----------------------------------------------------------
    status, body = post_json(endpoint, MAINTENANCE, {"region": SRC, "db_instance_identifier": "nope"})
    check(status == 404 and body["error"] == "DBInstanceNotFound", "maintenance for an unknown instance: 404")
    status, body = post_json(endpoint, MAINTENANCE, raw=b"[1, 2]")
    check(status == 400, "maintenance with a body that is not a JSON object: 400")
    status, body = post_json(endpoint, MAINTENANCE, {"regoin": SRC})
    check(status == 400, "maintenance with an unknown key: 400")
    status, _ = post_json(endpoint, MAINTENANCE, method="GET")
    check(status == 405, "GET maintenance: 405")
    expect_error(lambda: rds.modify_db_instance(DBInstanceIdentifier="bk1", BackupRetentionPeriod=36),
                 "InvalidParameterValue", "BackupRetentionPeriod 36", raw, 400)
    rds.create_db_cluster(DBClusterIdentifier="ret-aurora", Engine="aurora-postgresql", MasterUsername="admin",
                          MasterUserPassword="password123")
    rds.create_db_instance(DBInstanceIdentifier="ret-aurora-1", DBClusterIdentifier="ret-aurora",
                           Engine="aurora-postgresql", DBInstanceClass="db.r6g.large")
    expect_error(lambda: rds.modify_db_instance(DBInstanceIdentifier="ret-aurora-1", BackupRetentionPeriod=7, ApplyImmediately=True),
                 "InvalidParameterCombination", "modify retention of an Aurora member", raw, 400)


def check_aws_backup(client: Callable[[str, str], Any]) -> None:
    """Instances whose automated backups AWS Backup manages (AwsBackupRecoveryPointArn)."""
    rds = client("rds", SRC)
    raw = RawCapture(rds)
    new_db(rds, "awsb", BackupRetentionPeriod=7)
    d = rds.describe_db_instances(DBInstanceIdentifier="awsb")["DBInstances"][0]
    check("AwsBackupRecoveryPointArn" not in d and "<AwsBackupRecoveryPointArn" not in raw.body,
          "unmanaged instance: no AwsBackupRecoveryPointArn")
    recovery_point = f"arn:aws:backup:{SRC}:{ACCOUNT}:recovery-point:continuous:db-abcdefghijklmnopqrstuvwxyz-1a2b3c4d"
    m = rds.modify_db_instance(DBInstanceIdentifier="awsb", AwsBackupRecoveryPointArn=recovery_point)["DBInstance"]
    check(m.get("AwsBackupRecoveryPointArn") == recovery_point, "ModifyDBInstance AwsBackupRecoveryPointArn: returned")
    d = rds.describe_db_instances(DBInstanceIdentifier="awsb")["DBInstances"][0]
    check(d.get("AwsBackupRecoveryPointArn") == recovery_point
          and f"<AwsBackupRecoveryPointArn>{recovery_point}</AwsBackupRecoveryPointArn>" in raw.body,
          "DescribeDBInstances: AwsBackupRecoveryPointArn (XML too)")
    b = rds.describe_db_instance_automated_backups(DBInstanceIdentifier="awsb")["DBInstanceAutomatedBackups"][0]
    check(b.get("AwsBackupRecoveryPointArn") == recovery_point, "DescribeDBInstanceAutomatedBackups: AwsBackupRecoveryPointArn")
    for kw in ({"BackupRetentionPeriod": 14}, {"BackupRetentionPeriod": 14, "ApplyImmediately": True},
               {"BackupRetentionPeriod": 0, "ApplyImmediately": True}):
        expect_error(lambda: rds.modify_db_instance(DBInstanceIdentifier="awsb", **kw),
                     "InvalidParameterValue", f"managed by AWS Backup: modify {kw}", raw, 400)
    try:
        rds.modify_db_instance(DBInstanceIdentifier="awsb", BackupRetentionPeriod=14)
    except ClientError as e:
        msg = e.response["Error"]["Message"]
        check(recovery_point in msg and "current value 7" in msg, "managed by AWS Backup: the message names the recovery point and current value")
    d = rds.describe_db_instances(DBInstanceIdentifier="awsb")["DBInstances"][0]
    check(d["BackupRetentionPeriod"] == 7 and "PendingModifiedValues" not in d, "managed by AWS Backup: retention unchanged, nothing pending")
    m = rds.modify_db_instance(DBInstanceIdentifier="awsb", BackupRetentionPeriod=7, ApplyImmediately=True)["DBInstance"]
    check(m["BackupRetentionPeriod"] == 7, "managed by AWS Backup: the current value is accepted")
    expect_error(lambda: rds.modify_db_instance(DBInstanceIdentifier="awsb", AwsBackupRecoveryPointArn="arn:aws:s3:::not-a-recovery-point-but-long-enough"),
                 "InvalidParameterValue", "AwsBackupRecoveryPointArn that is not a recovery point ARN")


def check_pagination(client: Callable[[str, str], Any]) -> None:
    """DescribeDBInstances, DescribeDBSnapshots and DescribeDBInstanceAutomatedBackups with 250
    instances: MaxRecords 20..100 (default 100) and Marker."""
    rds = client("rds", PAG)
    raw = RawCapture(rds)
    names = [f"p{i:03d}" for i in range(250)]
    for name in names:
        new_db(rds, name)
    for i in range(5):
        rds.create_db_snapshot(DBInstanceIdentifier=names[i], DBSnapshotIdentifier=f"manual-{i}")

    def pages(op: str, key: str, **kw: Any) -> list[list[dict]]:
        out, marker = [], None
        while True:
            args = dict(kw, **({"Marker": marker} if marker else {}))
            resp = getattr(rds, op)(**args)
            out.append(resp[key])
            marker = resp.get("Marker")
            if not marker:
                return out

    p = pages("describe_db_instances", "DBInstances")
    ids = [d["DBInstanceIdentifier"] for page in p for d in page]
    check([len(x) for x in p] == [100, 100, 50] and ids == names,
          f"DescribeDBInstances: 250 instances in 3 pages of 100/100/50 ({[len(x) for x in p]}), each once, in order")
    first = rds.describe_db_instances()
    check("<Marker>" in raw.body and first.get("Marker"), "DescribeDBInstances XML: <Marker> on a partial page")
    p = pages("describe_db_instances", "DBInstances", MaxRecords=20)
    check(len(p) == 13 and all(len(x) == 20 for x in p[:-1]) and len(p[-1]) == 10
          and [d["DBInstanceIdentifier"] for page in p for d in page] == names, "DescribeDBInstances MaxRecords=20: 13 pages")
    paginated = [d for page in rds.get_paginator("describe_db_instances").paginate(PaginationConfig={"PageSize": 100})
                 for d in page["DBInstances"]]
    check(len(paginated) == 250, "boto3 paginator over DescribeDBInstances")
    for bad in (19, 101):
        expect_error(lambda: rds.describe_db_instances(MaxRecords=bad), "InvalidParameterValue",
                     f"DescribeDBInstances MaxRecords={bad}", raw, 400)
    expect_error(lambda: rds.describe_db_instances(Marker="not-a-marker"), "InvalidParameterValue", "DescribeDBInstances bad Marker")
    filtered = rds.describe_db_instances(Filters=[{"Name": "db-instance-id", "Values": names[:30]}], MaxRecords=20)
    rest = rds.describe_db_instances(Filters=[{"Name": "db-instance-id", "Values": names[:30]}], MaxRecords=20, Marker=filtered["Marker"])
    check(len(filtered["DBInstances"]) == 20 and len(rest["DBInstances"]) == 10 and "Marker" not in rest,
          "DescribeDBInstances Filters + MaxRecords/Marker")

    p = pages("describe_db_snapshots", "DBSnapshots", SnapshotType="automated")
    snaps = [s for page in p for s in page]
    check([len(x) for x in p] == [100, 100, 50] and all(s["SnapshotType"] == "automated" for s in snaps)
          and sorted(s["DBInstanceIdentifier"] for s in snaps) == names,
          f"DescribeDBSnapshots SnapshotType=automated: 250 in 3 pages ({[len(x) for x in p]}), manual ones excluded")
    p = pages("describe_db_snapshots", "DBSnapshots", SnapshotType="automated", MaxRecords=20)
    check(len(p) == 13 and sum(len(x) for x in p) == 250, "DescribeDBSnapshots SnapshotType=automated MaxRecords=20: 13 pages")
    p = pages("describe_db_snapshots", "DBSnapshots")
    check(sum(len(x) for x in p) == 255 and len(p) == 3, "DescribeDBSnapshots without SnapshotType: automated + manual (255)")
    check(len(rds.describe_db_snapshots(SnapshotType="manual")["DBSnapshots"]) == 5, "DescribeDBSnapshots SnapshotType=manual")
    by_dbi = rds.describe_db_snapshots(DbiResourceId=rds.describe_db_instances(DBInstanceIdentifier="p007")["DBInstances"][0]["DbiResourceId"])
    check([s["DBInstanceIdentifier"] for s in by_dbi["DBSnapshots"]] == ["p007"], "DescribeDBSnapshots DbiResourceId")
    expect_error(lambda: rds.describe_db_snapshots(SnapshotType="automated", MaxRecords=10), "InvalidParameterValue",
                 "DescribeDBSnapshots MaxRecords=10", raw, 400)
    paginated = [s for page in rds.get_paginator("describe_db_snapshots").paginate(SnapshotType="automated", PaginationConfig={"PageSize": 50})
                 for s in page["DBSnapshots"]]
    check(len(paginated) == 250, "boto3 paginator over DescribeDBSnapshots SnapshotType=automated")

    p = pages("describe_db_instance_automated_backups", "DBInstanceAutomatedBackups")
    check([len(x) for x in p] == [100, 100, 50]
          and sorted(b["DBInstanceIdentifier"] for page in p for b in page) == names,
          f"DescribeDBInstanceAutomatedBackups: 250 in 3 pages ({[len(x) for x in p]})")
    p = pages("describe_db_instance_automated_backups", "DBInstanceAutomatedBackups", MaxRecords=20)
    check(len(p) == 13 and sum(len(x) for x in p) == 250, "DescribeDBInstanceAutomatedBackups MaxRecords=20: 13 pages")

    # The marker names the last record returned: deleting records between pages loses nothing.
    page1 = rds.describe_db_instances()
    for name in ("p099", "p100"):
        rds.delete_db_instance(DBInstanceIdentifier=name, SkipFinalSnapshot=True)
    page2 = rds.describe_db_instances(Marker=page1["Marker"])
    check(page2["DBInstances"][0]["DBInstanceIdentifier"] == "p101" and len(page2["DBInstances"]) == 100,
          "DescribeDBInstances: deleting the last record of a page and the first of the next keeps the Marker valid")


def check_instance_facts(client: Callable[[str, str], Any]) -> None:
    """DescribeDBInstances facts for standalone, encrypted, Aurora, Multi-AZ DB cluster and
    read replica instances, and which sources StartDBInstanceAutomatedBackupsReplication refuses."""
    rds, rds_dst, kms = client("rds", SRC), client("rds", DST), client("kms", SRC)
    raw_dst = RawCapture(rds_dst)
    key = kms.create_key(Description="instance facts")["KeyMetadata"]
    default_key_arn = kms.describe_key(KeyId="alias/aws/rds")["KeyMetadata"]["Arn"]

    plain = new_db(rds, "facts-plain", BackupRetentionPeriod=3, PreferredBackupWindow="03:00-03:30",
                   PreferredMaintenanceWindow="Sun:05:00-Sun:05:30")
    d = rds.describe_db_instances(DBInstanceIdentifier="facts-plain")["DBInstances"][0]
    check(d["DBInstanceStatus"] == "available" and d["PreferredBackupWindow"] == "03:00-03:30"
          and d["PreferredMaintenanceWindow"] == "sun:05:00-sun:05:30",
          "standalone: DBInstanceStatus, PreferredBackupWindow, PreferredMaintenanceWindow")
    check(d["DbiResourceId"] == plain["DbiResourceId"] and "LatestRestorableTime" in d
          and d["StorageEncrypted"] is False and "KmsKeyId" not in d and "DBClusterIdentifier" not in d
          and "ReadReplicaSourceDBInstanceIdentifier" not in d,
          "standalone: DbiResourceId, LatestRestorableTime, StorageEncrypted false, no KmsKeyId/cluster/source")

    new_db(rds, "facts-enc-default", StorageEncrypted=True)
    new_db(rds, "facts-enc-keyid", StorageEncrypted=True, KmsKeyId=key["KeyId"])
    d1 = rds.describe_db_instances(DBInstanceIdentifier="facts-enc-default")["DBInstances"][0]
    d2 = rds.describe_db_instances(DBInstanceIdentifier="facts-enc-keyid")["DBInstances"][0]
    check(d1["StorageEncrypted"] is True and d1["KmsKeyId"] == default_key_arn,
          "encrypted without KmsKeyId: KmsKeyId is the ARN of the aws/rds key")
    check(d2["StorageEncrypted"] is True and d2["KmsKeyId"] == key["Arn"], "encrypted with a key ID: KmsKeyId is the key ARN")

    rds.create_db_cluster(DBClusterIdentifier="facts-aurora", Engine="aurora-mysql", MasterUsername="admin",
                          MasterUserPassword="password123", StorageEncrypted=True, KmsKeyId=key["Arn"])
    rds.create_db_instance(DBInstanceIdentifier="facts-aurora-1", DBClusterIdentifier="facts-aurora",
                           Engine="aurora-mysql", DBInstanceClass="db.r6g.large")
    rds.create_db_cluster(DBClusterIdentifier="facts-aurora-plain", Engine="aurora-postgresql", MasterUsername="admin",
                          MasterUserPassword="password123")
    rds.create_db_instance(DBInstanceIdentifier="facts-aurora-plain-1", DBClusterIdentifier="facts-aurora-plain",
                           Engine="aurora-postgresql", DBInstanceClass="db.r6g.large")
    a = rds.describe_db_instances(DBInstanceIdentifier="facts-aurora-1")["DBInstances"][0]
    check(a["DBClusterIdentifier"] == "facts-aurora" and a["StorageEncrypted"] is True and a["KmsKeyId"] == key["Arn"]
          and "ReadReplicaSourceDBInstanceIdentifier" not in a, "Aurora member: DBClusterIdentifier, encryption of the cluster")
    a = rds.describe_db_instances(DBInstanceIdentifier="facts-aurora-plain-1")["DBInstances"][0]
    check(a["StorageEncrypted"] is False and "KmsKeyId" not in a, "unencrypted Aurora member: no KmsKeyId")
    check(not rds.describe_db_snapshots(DBInstanceIdentifier="facts-aurora-1")["DBSnapshots"],
          "Aurora member: no DB snapshots (its backups are the cluster's)")

    rds.create_db_cluster(DBClusterIdentifier="facts-maz", Engine="postgres", MasterUsername="admin",
                          MasterUserPassword="password123", DBClusterInstanceClass="db.m6gd.large",
                          AllocatedStorage=100, StorageType="io1", Iops=1000)
    members = rds.describe_db_clusters(DBClusterIdentifier="facts-maz")["DBClusters"][0]["DBClusterMembers"]
    maz = rds.describe_db_instances(Filters=[{"Name": "db-cluster-id", "Values": ["facts-maz"]}])["DBInstances"]
    check(sorted(m["DBInstanceIdentifier"] for m in members) == [f"facts-maz-instance-{n}" for n in (1, 2, 3)]
          and sum(m["IsClusterWriter"] for m in members) == 1, "Multi-AZ DB cluster: one writer and two readers created with it")
    check(len(maz) == 3 and all(i["DBClusterIdentifier"] == "facts-maz" and i["Engine"] == "postgres"
                                and i["StorageType"] == "io1" for i in maz)
          and len({i["AvailabilityZone"] for i in maz}) == 3,
          "Multi-AZ DB cluster members: DBClusterIdentifier, engine, StorageType io1, three AZs")

    new_db(rds, "facts-primary", BackupRetentionPeriod=7)
    rds.create_db_instance_read_replica(DBInstanceIdentifier="facts-replica", SourceDBInstanceIdentifier="facts-primary")
    r = rds.describe_db_instances(DBInstanceIdentifier="facts-replica")["DBInstances"][0]
    p = rds.describe_db_instances(DBInstanceIdentifier="facts-primary")["DBInstances"][0]
    check(r["ReadReplicaSourceDBInstanceIdentifier"] == "facts-primary" and p["ReadReplicaDBInstanceIdentifiers"] == ["facts-replica"],
          "read replica: ReadReplicaSourceDBInstanceIdentifier; the source lists it")
    check(r["BackupRetentionPeriod"] == 0 and r["DbiResourceId"] != p["DbiResourceId"] and "LatestRestorableTime" not in r,
          "read replica: created with backups disabled, its own DbiResourceId")

    def start(identifier: str) -> Any:
        arn = rds.describe_db_instances(DBInstanceIdentifier=identifier)["DBInstances"][0]["DBInstanceArn"]
        return lambda: rds_dst.start_db_instance_automated_backups_replication(SourceDBInstanceArn=arn)

    expect_error(start("facts-aurora-plain-1"), "InvalidDBInstanceState", "start replication of an Aurora member", raw_dst, 400)
    expect_error(start("facts-maz-instance-1"), "InvalidDBInstanceState", "start replication of a Multi-AZ DB cluster member", raw_dst, 400)
    expect_error(start("facts-replica"), "InvalidDBInstanceState", "start replication of a read replica (backups disabled)")
    rds.modify_db_instance(DBInstanceIdentifier="facts-replica", BackupRetentionPeriod=1, ApplyImmediately=True)
    expect_error(start("facts-replica"), "InvalidDBInstanceState", "start replication of a read replica with backups enabled", raw_dst, 400)
    check(not rds_dst.describe_db_instance_automated_backups()["DBInstanceAutomatedBackups"], "refused starts left nothing in the destination")

    rds.delete_db_cluster(DBClusterIdentifier="facts-maz", SkipFinalSnapshot=True)
    check(not rds.describe_db_instances(Filters=[{"Name": "db-cluster-id", "Values": ["facts-maz"]}])["DBInstances"],
          "deleting a Multi-AZ DB cluster deletes its instances")


def check_destination_listing(client: Callable[[str, str], Any]) -> None:
    """What the controller's sweep needs in a destination Region: every replica in one paginated
    listing, and the db-instance-id / dbi-resource-id filters."""
    rds_src, rds_other, rds_dst = client("rds", SRC), client("rds", OTHER), client("rds", DST)
    sources = [new_db(rds_src, f"dst-{i:02d}") for i in range(20)]
    sources += [new_db(rds_other, "dst-00"), new_db(rds_other, "dst-other")]
    local = new_db(rds_dst, "dst-local")
    for s in sources[:20]:
        rds_dst.start_db_instance_automated_backups_replication(SourceDBInstanceArn=s["DBInstanceArn"])
    for s in sources[18:20]:  # stop two: their replicas are retained, freeing quota
        rds_dst.stop_db_instance_automated_backups_replication(SourceDBInstanceArn=s["DBInstanceArn"])
    for s in sources[20:]:
        rds_dst.start_db_instance_automated_backups_replication(SourceDBInstanceArn=s["DBInstanceArn"])

    def listing(**kw: Any) -> list[dict]:
        return [b for page in rds_dst.get_paginator("describe_db_instance_automated_backups").paginate(
            PaginationConfig={"PageSize": 20}, **kw) for b in page["DBInstanceAutomatedBackups"]]

    everything = listing()
    replicas = [b for b in everything if b["Region"] != DST]
    check(len(everything) == 23 and len({b["DBInstanceAutomatedBackupsArn"] for b in everything}) == 23,
          f"destination, unfiltered, paginated by 20: 22 replicas + 1 local backup, each once ({len(everything)})")
    check(sorted(b["Status"] for b in replicas) == ["replicating"] * 20 + ["retained"] * 2
          and {b["DbiResourceId"] for b in replicas} == {s["DbiResourceId"] for s in sources},
          "destination lists every replica of the Region (20 replicating, 2 retained), from both source Regions")
    check([b["Status"] for b in everything if b["Region"] == DST] == ["active"], "destination lists its own local backup as active")
    page = rds_dst.describe_db_instance_automated_backups(MaxRecords=20)
    check(len(page["DBInstanceAutomatedBackups"]) == 20 and page.get("Marker"), "destination MaxRecords=20: a first page with a Marker")

    by_id = listing(Filters=[{"Name": "db-instance-id", "Values": ["dst-00"]}])
    check(sorted(b["Region"] for b in by_id) == sorted([SRC, OTHER]),
          "filter db-instance-id by identifier: the replicas of both dst-00 (two source Regions)")
    by_arn = listing(Filters=[{"Name": "db-instance-id", "Values": [sources[20]["DBInstanceArn"], sources[5]["DBInstanceArn"]]}])
    check(sorted(b["DBInstanceArn"] for b in by_arn) == sorted([sources[20]["DBInstanceArn"], sources[5]["DBInstanceArn"]]),
          "filter db-instance-id by two instance ARNs")
    by_dbi = listing(Filters=[{"Name": "dbi-resource-id", "Values": [sources[3]["DbiResourceId"], sources[21]["DbiResourceId"]]}])
    check(sorted(b["DbiResourceId"] for b in by_dbi) == sorted([sources[3]["DbiResourceId"], sources[21]["DbiResourceId"]]),
          "filter dbi-resource-id by two resource IDs")
    one = by_dbi[0]
    by_backup_arn = listing(Filters=[{"Name": "dbi-resource-id", "Values": [one["DBInstanceAutomatedBackupsArn"]]}])
    check([b["DbiResourceId"] for b in by_backup_arn] == [one["DbiResourceId"]], "filter dbi-resource-id by automated backup ARN")
    retained = listing(Filters=[{"Name": "status", "Values": ["retained"]}, {"Name": "db-instance-id", "Values": ["dst-18", "dst-00"]}])
    check([b["DBInstanceIdentifier"] for b in retained] == ["dst-18"], "filters combine (status AND db-instance-id)")
    check(listing(Filters=[{"Name": "dbi-resource-id", "Values": ["db-NOSUCHRESOURCE"]}]) == [],
          "filter matching nothing: empty list, not an error")
    check(local["DbiResourceId"] in {b["DbiResourceId"] for b in listing(Filters=[{"Name": "status", "Values": ["active"]}])},
          "filter status=active: the destination's own instance")

    # A sweep that deletes a backup between two pages still sees every other backup.
    first = rds_dst.describe_db_instance_automated_backups(MaxRecords=20)
    victim = next(b for b in first["DBInstanceAutomatedBackups"] if b["Status"] == "replicating")
    rds_dst.stop_db_instance_automated_backups_replication(SourceDBInstanceArn=victim["DBInstanceArn"])
    rds_dst.delete_db_instance_automated_backup(DBInstanceAutomatedBackupsArn=victim["DBInstanceAutomatedBackupsArn"])
    second = rds_dst.describe_db_instance_automated_backups(MaxRecords=20, Marker=first["Marker"])
    seen = {b["DBInstanceAutomatedBackupsArn"] for b in first["DBInstanceAutomatedBackups"] + second["DBInstanceAutomatedBackups"]}
    remaining = {b["DBInstanceAutomatedBackupsArn"] for b in listing()}
    check(len(remaining) == 22 and remaining <= seen and "Marker" not in second,
          "deleting a backup of the first page doesn't shift the second (Marker names the last backup returned)")


def check_restore(endpoint: str, client: Callable[[str, str], Any]) -> None:
    """The restore drill: RestoreDBInstanceToPointInTime from replicated automated backups in
    the destination Region, its errors, creating -> available, and DeleteDBInstance."""
    rds_src, rds, kms, ec2 = client("rds", SRC), client("rds", RDST), client("kms", RDST), client("ec2", RDST)
    raw, raw_src = RawCapture(rds), RawCapture(rds_src)

    def restore(target: str, region_client: Any = rds, **kw: Any) -> dict:
        return region_client.restore_db_instance_to_point_in_time(TargetDBInstanceIdentifier=target, **kw)["DBInstance"]

    def describe(name: str) -> dict:
        return rds.describe_db_instances(DBInstanceIdentifier=name)["DBInstances"][0]

    def window_of(arn: str) -> dict:
        return rds.describe_db_instance_automated_backups(DBInstanceAutomatedBackupsArn=arn)["DBInstanceAutomatedBackups"][0]

    def set_transition(transition: dict) -> None:
        status, _ = post_json(endpoint, f"{STATE_MANAGER}/set-transition", {"model_name": RESTORE_MODEL, "transition": transition})
        check(status == 201, f"POST {STATE_MANAGER}/set-transition {transition}: 201")

    # --- A replication into RDST, and what the drill needs there --------------------------------
    key = kms.create_key(Description="restore drill replica key")["KeyMetadata"]
    source = new_db(rds_src, "drill-src", EngineVersion="16.3", DBInstanceClass="db.t3.small", AllocatedStorage=50,
                    StorageType="gp2", StorageEncrypted=True, BackupRetentionPeriod=7)
    arn = rds.start_db_instance_automated_backups_replication(
        SourceDBInstanceArn=source["DBInstanceArn"], KmsKeyId=key["Arn"], BackupRetentionPeriod=3,
    )["DBInstanceAutomatedBackup"]["DBInstanceAutomatedBackupsArn"]
    backup = window_of(arn)
    window = backup.get("RestoreWindow") or {}
    check(backup["Status"] == "replicating" and window.get("EarliestTime") and window.get("LatestTime")
          and window["EarliestTime"] <= window["LatestTime"],
          "replicated backup: RestoreWindow.LatestTime, its latest restorable time (recovery point age)")
    check("<DBInstanceClass>" not in raw.body and "<DBName>" not in raw.body,
          "the DBInstanceClass/DBName recorded for restores don't show in DescribeDBInstanceAutomatedBackups")
    vpc = ec2.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.20.{i}.0/24", AvailabilityZone=f"{RDST}{zone}")["Subnet"]["SubnetId"]
               for i, zone in enumerate("ac")]
    rds.create_db_subnet_group(DBSubnetGroupName="drill-subnets", DBSubnetGroupDescription="restore drills", SubnetIds=subnets)
    new_db(rds, "drill-taken", BackupRetentionPeriod=0)
    tags = [{"Key": "backupwarden.io/drill", "Value": "smoke"}]
    drill = dict(SourceDBInstanceAutomatedBackupsArn=arn, UseLatestRestorableTime=True, DBInstanceClass="db.m5.large",
                 DBSubnetGroupName="drill-subnets", PubliclyAccessible=False, DeletionProtection=False,
                 BackupRetentionPeriod=0, Tags=tags)

    # --- Refused restores --------------------------------------------------------------------------
    no_source = {k: v for k, v in drill.items() if k != "SourceDBInstanceAutomatedBackupsArn"}
    expect_error(lambda: restore("drill-x", **no_source), "InvalidParameterCombination", "restore without a source", raw, 400)
    expect_error(lambda: restore("drill-x", SourceDBInstanceIdentifier="drill-taken", **drill), "InvalidParameterCombination",
                 "restore from both a backup ARN and SourceDBInstanceIdentifier", raw, 400)
    expect_error(lambda: restore("drill-x", SourceDbiResourceId=source["DbiResourceId"], **drill), "InvalidParameterCombination",
                 "restore from both a backup ARN and SourceDbiResourceId")
    expect_error(lambda: restore("drill-x", RestoreTime=window["LatestTime"], **drill), "InvalidParameterCombination",
                 "restore with both UseLatestRestorableTime and RestoreTime", raw, 400)
    expect_error(lambda: restore("drill-x", rds_src, **drill), "DBInstanceAutomatedBackupNotFound",
                 f"restore in {SRC} from backups that live in {RDST}", raw_src, 404)
    unknown = re.sub(r"ab-[a-z0-9]+$", "ab-" + "0" * 39, arn)
    expect_error(lambda: restore("drill-x", **dict(drill, SourceDBInstanceAutomatedBackupsArn=unknown)),
                 "DBInstanceAutomatedBackupNotFound", "restore from an ARN that names no automated backups", raw, 404)
    at_time = {k: v for k, v in drill.items() if k != "UseLatestRestorableTime"}
    expect_error(lambda: restore("drill-x", RestoreTime=window["EarliestTime"] - datetime.timedelta(days=1), **at_time),
                 "InvalidRestoreFault", "RestoreTime before the RestoreWindow", raw, 400)
    expect_error(lambda: restore("drill-x", RestoreTime=window["LatestTime"] + datetime.timedelta(hours=1), **at_time),
                 "InvalidRestoreFault", "RestoreTime after the latest restorable time")
    expect_error(lambda: restore("drill-x", **dict(drill, BackupRetentionPeriod=36)), "InvalidParameterValue",
                 "restore with BackupRetentionPeriod 36")
    expect_error(lambda: restore("drill-x", MultiAZ=True, AvailabilityZone=f"{RDST}a", **drill), "InvalidParameterCombination",
                 "restore Multi-AZ into a given Availability Zone")
    expect_error(lambda: restore("drill-taken", **drill), "DBInstanceAlreadyExists", "restore onto an existing identifier", raw, 400)
    expect_error(lambda: restore("drill-x", SourceDBInstanceIdentifier="drill-taken", UseLatestRestorableTime=True),
                 "PointInTimeRestoreNotEnabled", "restore from an instance with BackupRetentionPeriod 0", raw, 400)
    check([d["DBInstanceIdentifier"] for d in rds.describe_db_instances()["DBInstances"]] == ["drill-taken"],
          "refused restores created no instance")

    # --- The drill (default transition: available at once) ----------------------------------------------
    status, body = post_json(endpoint, f"{STATE_MANAGER}/get-transition?model_name={RESTORE_MODEL}", method="GET")
    check(status == 200 and body == {"progression": "immediate"},
          f"{RESTORE_MODEL}: default transition immediate (BACKUP_WARDEN_MOTO_RESTORE_SECONDS unset)")
    r = restore("drill-1", **drill)
    check(r["DBInstanceStatus"] == "creating" and "Endpoint" not in r, "restore answers DBInstanceStatus creating, no Endpoint (as AWS does)")
    check("<RestoreDBInstanceToPointInTimeResult><DBInstance>" in raw.body and "<DBInstanceStatus>creating</DBInstanceStatus>" in raw.body,
          "Restore XML: result wrapper, DBInstanceStatus creating")
    d = describe("drill-1")
    check(d["DBInstanceStatus"] == "available" and d["Endpoint"]["Address"].startswith("drill-1.") and d["Endpoint"]["Port"] == 5432,
          "default transition: available at the first DescribeDBInstances, with Endpoint.Address/Port")
    check(d["Engine"] == "postgres" and d["EngineVersion"] == "16.3" and d["AllocatedStorage"] == 50 and d["StorageType"] == "gp2",
          "restored: the source's engine, engine version, allocated storage and storage type")
    check(d["StorageEncrypted"] is True and d["KmsKeyId"] == key["Arn"],
          f"restored: encrypted with the replica's KMS key of {RDST}")
    check(d["DBInstanceClass"] == "db.m5.large" and d["DBSubnetGroup"]["DBSubnetGroupName"] == "drill-subnets"
          and d["PubliclyAccessible"] is False and d["DeletionProtection"] is False and d["MultiAZ"] is False,
          "restored: DBInstanceClass and DBSubnetGroupName as asked; not public, no deletion protection, single-AZ")
    check(d["BackupRetentionPeriod"] == 0 and "LatestRestorableTime" not in d and d["TagList"] == tags
          and d["CopyTagsToSnapshot"] is False and d["DbiResourceId"] != source["DbiResourceId"],
          "restored: BackupRetentionPeriod 0, the drill tags, CopyTagsToSnapshot false, its own DbiResourceId")
    expect_error(lambda: rds.describe_db_instance_automated_backups(DBInstanceIdentifier="drill-1"),
                 "DBInstanceAutomatedBackupNotFound", "restored with BackupRetentionPeriod 0: no automated backup")
    gone = rds.delete_db_instance(DBInstanceIdentifier="drill-1", SkipFinalSnapshot=True, DeleteAutomatedBackups=True)["DBInstance"]
    check(gone["DBInstanceStatus"] == "deleting", "DeleteDBInstance SkipFinalSnapshot, DeleteAutomatedBackups: deleting")
    expect_error(lambda: describe("drill-1"), "DBInstanceNotFound", "the drill instance is gone", raw, 404)
    check(window_of(arn)["Status"] == "replicating" and len(rds.describe_db_instance_automated_backups()["DBInstanceAutomatedBackups"]) == 1,
          "the drill left the replica replicating, and no automated backup of its own")

    # --- A time in the window; the defaults ------------------------------------------------------------
    window = window_of(arn)["RestoreWindow"]
    middle = window["EarliestTime"] + (window["LatestTime"] - window["EarliestTime"]) / 2
    restore("drill-2", SourceDBInstanceAutomatedBackupsArn=arn, RestoreTime=middle, Port=6543, MultiAZ=True)
    d = describe("drill-2")
    check(d["DBInstanceClass"] == "db.t3.small" and d["BackupRetentionPeriod"] == 3 and d["DeletionProtection"] is False
          and not d.get("TagList") and "DBSubnetGroup" not in d,
          "RestoreTime in the window; defaults: the source's class, the backup's retention (3), no tags, default subnet group")
    check(d["Endpoint"]["Port"] == 6543 and d["MultiAZ"] is True, "restored: Port and MultiAZ as asked")
    local = rds.describe_db_instance_automated_backups(DBInstanceIdentifier="drill-2")["DBInstanceAutomatedBackups"]
    check([b["Status"] for b in local] == ["active"], "restored with retention 3: its own automated backup, active")
    rds.delete_db_instance(DBInstanceIdentifier="drill-2", SkipFinalSnapshot=True, DeleteAutomatedBackups=True)
    expect_error(lambda: rds.describe_db_instance_automated_backups(DBInstanceIdentifier="drill-2"),
                 "DBInstanceAutomatedBackupNotFound", "DeleteAutomatedBackups=true: its automated backup is gone too")
    r = restore("drill-3", SourceDbiResourceId=source["DbiResourceId"], UseLatestRestorableTime=True)
    check(r["KmsKeyId"] == key["Arn"] and r["AllocatedStorage"] == 50, f"SourceDbiResourceId finds the replica in {RDST}")
    rds.delete_db_instance(DBInstanceIdentifier="drill-3", SkipFinalSnapshot=True)

    # --- creating -> available through moto's state manager --------------------------------------------
    set_transition({"progression": "manual", "times": 2})
    restore("drill-4", **drill)
    d = describe("drill-4")
    check(d["DBInstanceStatus"] == "creating" and "Endpoint" not in d and "<Endpoint>" not in raw.body,
          "manual transition, first DescribeDBInstances: creating, no Endpoint")
    d = describe("drill-4")
    check(d["DBInstanceStatus"] == "available" and d["Endpoint"]["Port"] == 5432, "manual transition, second DescribeDBInstances: available")
    set_transition({"progression": "time", "seconds": 1})
    started = time.time()
    restore("drill-5", **drill)
    statuses = [describe("drill-5")["DBInstanceStatus"]]
    while statuses[-1] != "available" and time.time() - started < 10:
        time.sleep(0.2)
        statuses.append(describe("drill-5")["DBInstanceStatus"])
    check(statuses[0] == "creating" and statuses[-1] == "available" and time.time() - started >= 1,
          f"time transition of 1 s: creating, then available ({len(statuses)} polls)")
    set_transition({"progression": "manual", "times": 1000})
    restore("drill-6", **drill)
    check(rds.delete_db_instance(DBInstanceIdentifier="drill-6", SkipFinalSnapshot=True,
                                 DeleteAutomatedBackups=True)["DBInstance"]["DBInstanceStatus"] == "deleting",
          "a restore still creating can be deleted (a drill abandoned half-way)")
    status, _ = post_json(endpoint, f"{STATE_MANAGER}/unset-transition", {"model_name": RESTORE_MODEL})
    restore("drill-7", **drill)
    check(status == 201 and describe("drill-7")["DBInstanceStatus"] == "available", "unset-transition: available at once again")
    for name in ("drill-4", "drill-5", "drill-7"):
        rds.delete_db_instance(DBInstanceIdentifier=name, SkipFinalSnapshot=True, DeleteAutomatedBackups=True)

    # --- A retained replica; a local source -------------------------------------------------------------
    rds.stop_db_instance_automated_backups_replication(SourceDBInstanceArn=source["DBInstanceArn"])
    stopped_at = window_of(arn)["RestoreWindow"]["LatestTime"]
    time.sleep(0.05)
    expect_error(lambda: restore("drill-x", SourceDBInstanceAutomatedBackupsArn=arn,
                                 RestoreTime=datetime.datetime.now(datetime.timezone.utc)),
                 "InvalidRestoreFault", "retained replica: a RestoreTime after the replication stopped")
    check(restore("drill-8", SourceDBInstanceAutomatedBackupsArn=arn, UseLatestRestorableTime=True)["KmsKeyId"] == key["Arn"]
          and window_of(arn)["RestoreWindow"]["LatestTime"] == stopped_at, "retained replica: restores to the time replication stopped")
    new_db(rds, "drill-local", BackupRetentionPeriod=5, DeletionProtection=True, PubliclyAccessible=True)
    restore("drill-9", SourceDBInstanceIdentifier="drill-local", UseLatestRestorableTime=True,
            DeletionProtection=False, PubliclyAccessible=False, BackupRetentionPeriod=0)
    d = describe("drill-9")
    check(d["DeletionProtection"] is False and d["PubliclyAccessible"] is False and d["BackupRetentionPeriod"] == 0,
          "SourceDBInstanceIdentifier: false and 0 override the source's true and 5 (moto kept the source's)")


def check_replication_quota(endpoint: str, client: Callable[[str, str], Any]) -> None:
    """The test-only quota endpoint: the replication quota per account and destination Region,
    counted per account and Region."""
    rds_a, rds_a_dst, rds_a_other = client("rds", SRC), client("rds", QDST), client("rds", OTHER)
    raw_a_dst, raw_a_other = RawCapture(rds_a_dst), RawCapture(rds_a_other)
    setting = {"account_id": ACCOUNT, "region": QDST, "replications": 25}

    # --- Contract and validation --------------------------------------------------------------
    status, body = post_json(endpoint, QUOTA, method="GET")
    check(status == 200 and body == {"default": 20, "overrides": []}, f"GET {QUOTA}: default 20, no overrides")
    bad_bodies: list[tuple[str, Any]] = [
        ("no body", None),
        ("a JSON array", [setting]),
        ("account_id missing", {"region": QDST, "replications": 25}),
        ("region missing", {"account_id": ACCOUNT, "replications": 25}),
        ("replications missing", {"account_id": ACCOUNT, "region": QDST}),
        ("an unknown key", dict(setting, service="rds")),
        ("account_id a number", dict(setting, account_id=int(ACCOUNT))),
        ("account_id not 12 digits", dict(setting, account_id="1234")),
        ("region a number", dict(setting, region=5)),
        ("an unknown region", dict(setting, region="us-nowhere-1")),
        ("replications a string", dict(setting, replications="25")),
        ("replications a float", dict(setting, replications=25.5)),
        ("replications a boolean", dict(setting, replications=True)),
        ("replications negative", dict(setting, replications=-1)),
        ("replications null", dict(setting, replications=None)),
    ]
    for what, bad in bad_bodies:
        status, body = post_json(endpoint, QUOTA, bad)
        check(status == 400 and body["error"] == "BadRequest", f"POST {QUOTA} with {what}: 400 BadRequest ({body.get('message')})")
    status, body = post_json(endpoint, QUOTA, raw=b"{not json")
    check(status == 400 and body["error"] == "BadRequest", f"POST {QUOTA} with a body that is not JSON: 400")
    for method in ("PUT", "DELETE", "PATCH"):
        status, _ = post_json(endpoint, QUOTA, setting, method=method)
        check(status == 405, f"{method} {QUOTA}: 405")
    status, body = post_json(endpoint, QUOTA, method="GET")
    check(status == 200 and body["overrides"] == [], "refused requests stored nothing")

    status, body = post_json(endpoint, QUOTA, setting)
    check(status == 200 and body == setting, f"POST {QUOTA} {setting}: 200 with the stored setting")
    status, body = post_json(endpoint, QUOTA, method="GET")
    check(status == 200 and body == {"default": 20, "overrides": [setting]}, f"GET {QUOTA} lists the override")

    # --- Account A: 25 replications into QDST, the 26th refused ------------------------------------
    a_sources = [new_db(rds_a, f"quota-a-{i:02d}")["DBInstanceArn"] for i in range(26)]
    for arn in a_sources[:25]:
        rds_a_dst.start_db_instance_automated_backups_replication(SourceDBInstanceArn=arn)
    a_replicating = rds_a_dst.describe_db_instance_automated_backups(Filters=[{"Name": "status", "Values": ["replicating"]}])
    check(len(a_replicating["DBInstanceAutomatedBackups"]) == 25, f"account {ACCOUNT}, quota 25: 25 replications into {QDST} (21st to 25th accepted)")
    expect_error(lambda: rds_a_dst.start_db_instance_automated_backups_replication(SourceDBInstanceArn=a_sources[25]),
                 "DBInstanceAutomatedBackupQuotaExceeded", f"account {ACCOUNT}, quota 25: 26th replication into {QDST}", raw_a_dst, 400)
    check("Cannot replicate more than 25 " in raw_a_dst.body, "the quota error names the raised quota (25)")

    # --- Account B, same Regions: the default 20, its own count --------------------------------------
    creds = client("sts", SRC).assume_role(RoleArn=f"arn:aws:iam::{OTHER_ACCOUNT}:role/quota-smoke",
                                           RoleSessionName="quota-smoke")["Credentials"]

    def client_b(service: str, region: str) -> Any:
        return boto3.client(service, region_name=region, endpoint_url=endpoint,
                            aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds["SecretAccessKey"],
                            aws_session_token=creds["SessionToken"])

    check(client_b("sts", SRC).get_caller_identity()["Account"] == OTHER_ACCOUNT, f"AssumeRole switches to account {OTHER_ACCOUNT}")
    rds_b, rds_b_dst = client_b("rds", SRC), client_b("rds", QDST)
    raw_b_dst = RawCapture(rds_b_dst)
    b_sources = [new_db(rds_b, f"quota-b-{i:02d}")["DBInstanceArn"] for i in range(21)]
    check(all(f":{OTHER_ACCOUNT}:db:" in arn for arn in b_sources), f"account {OTHER_ACCOUNT}'s instances have its ARNs")
    check(not rds_b_dst.describe_db_instance_automated_backups()["DBInstanceAutomatedBackups"],
          f"account {OTHER_ACCOUNT} sees none of account {ACCOUNT}'s replicas in {QDST}")
    for arn in b_sources[:20]:
        rds_b_dst.start_db_instance_automated_backups_replication(SourceDBInstanceArn=arn)
    check(len(rds_b_dst.describe_db_instance_automated_backups()["DBInstanceAutomatedBackups"]) == 20,
          f"account {OTHER_ACCOUNT}: 20 replications into {QDST} although account {ACCOUNT} has 25 there (counted per account)")
    expect_error(lambda: rds_b_dst.start_db_instance_automated_backups_replication(SourceDBInstanceArn=b_sources[20]),
                 "DBInstanceAutomatedBackupQuotaExceeded", f"account {OTHER_ACCOUNT} without an override: 21st replication into {QDST}",
                 raw_b_dst, 400)
    check("Cannot replicate more than 20 " in raw_b_dst.body, f"account {OTHER_ACCOUNT} gets the default quota 20")
    check(len(rds_a_dst.describe_db_instance_automated_backups()["DBInstanceAutomatedBackups"]) == 25,
          f"account {ACCOUNT} still has its 25 replicas in {QDST}")

    # --- Per Region; lowering and raising again ---------------------------------------------------
    zero = {"account_id": ACCOUNT, "region": OTHER, "replications": 0}
    status, body = post_json(endpoint, QUOTA, zero)
    check(status == 200 and body == zero, f"POST {QUOTA} quota 0 for {OTHER}")
    expect_error(lambda: rds_a_other.start_db_instance_automated_backups_replication(SourceDBInstanceArn=a_sources[25]),
                 "DBInstanceAutomatedBackupQuotaExceeded", f"account {ACCOUNT}, quota 0 in {OTHER}: first replication there",
                 raw_a_other, 400)
    lowered = dict(setting, replications=22)
    status, body = post_json(endpoint, QUOTA, lowered)
    check(status == 200 and body == lowered, f"POST {QUOTA} lowers {QDST} to 22 (replaces the override)")
    check(len(rds_a_dst.describe_db_instance_automated_backups(Filters=[{"Name": "status", "Values": ["replicating"]}])["DBInstanceAutomatedBackups"]) == 25,
          "lowering the quota below the count stops no replication")
    rds_a_dst.stop_db_instance_automated_backups_replication(SourceDBInstanceArn=a_sources[0])
    expect_error(lambda: rds_a_dst.start_db_instance_automated_backups_replication(SourceDBInstanceArn=a_sources[25]),
                 "DBInstanceAutomatedBackupQuotaExceeded", "24 active, quota 22: start refused")
    raised = dict(setting, replications=1000)
    post_json(endpoint, QUOTA, raised)
    started = rds_a_dst.start_db_instance_automated_backups_replication(SourceDBInstanceArn=a_sources[25])["DBInstanceAutomatedBackup"]
    check(started["Status"] == "pending", "quota raised to 1000: the start is accepted")
    status, body = post_json(endpoint, QUOTA, method="GET")
    check(status == 200 and body["overrides"] == [raised, zero], f"GET {QUOTA}: one override per account and Region, sorted ({body['overrides']})")

    # --- /moto-api/reset drops the overrides ----------------------------------------------------------
    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST"), timeout=10).close()
    status, body = post_json(endpoint, QUOTA, method="GET")
    check(status == 200 and body == {"default": 20, "overrides": []}, "/moto-api/reset clears the quota overrides")
    arn = new_db(rds_a, "quota-after-reset")["DBInstanceArn"]
    rds_a_other.start_db_instance_automated_backups_replication(SourceDBInstanceArn=arn)
    check(len(rds_a_other.describe_db_instance_automated_backups()["DBInstanceAutomatedBackups"]) == 1,
          f"after reset: the default quota applies again in {OTHER} (quota 0 gone)")


def check_kms_keys(endpoint: str, client: Callable[[str, str], Any]) -> None:
    """KeyManager, CreationDate, finding keys by their tags, scheduling a deletion, and the
    test-only key age endpoint."""
    kms, tagging = client("kms", KDST), client("resourcegroupstaggingapi", KDST)
    managed = kms.describe_key(KeyId="alias/aws/rds")["KeyMetadata"]
    check(managed["KeyManager"] == "AWS", f"alias/aws/rds is an AWS managed key (KeyManager {managed['KeyManager']})")
    tags = [{"TagKey": "managed-by", "TagValue": "backup-warden"},
            {"TagKey": "backup-warden/source-db-instance", "TagValue": f"arn:aws:rds:{SRC}:{ACCOUNT}:db:a"}]
    ours = kms.create_key(Description="tagged", Tags=tags)["KeyMetadata"]
    other = kms.create_key(Description="other source", Tags=[tags[0], dict(tags[1], TagValue="arn:other")])["KeyMetadata"]
    kms.create_key(Description="untagged")
    check(ours["KeyManager"] == "CUSTOMER" and isinstance(ours.get("CreationDate"), type(managed["CreationDate"])),
          "a created key is customer managed and has a CreationDate")

    def found(*filters: tuple[str, str]) -> set[str]:
        pages = tagging.get_paginator("get_resources").paginate(
            ResourceTypeFilters=["kms:key"], ResourcesPerPage=1,
            TagFilters=[{"Key": k, "Values": [v]} for k, v in filters])
        return {r["ResourceARN"] for page in pages for r in page["ResourceTagMappingList"]}

    check(found(("managed-by", "backup-warden")) == {ours["Arn"], other["Arn"]},
          "GetResources kms:key by one tag finds both tagged keys, one per page")
    check(found(("managed-by", "backup-warden"), ("backup-warden/source-db-instance", tags[1]["TagValue"])) == {ours["Arn"]},
          "GetResources with two tag filters finds the key carrying both")

    old = kms.describe_key(KeyId=ours["KeyId"])["KeyMetadata"]["CreationDate"]
    status, body = post_json(endpoint, KEY_AGE, {"account_id": ACCOUNT, "region": KDST, "key_id": ours["Arn"], "seconds": 86400})
    check(status == 200 and body["key_id"] == ours["KeyId"], f"POST {KEY_AGE}: 200 ({body})")
    new = kms.describe_key(KeyId=ours["KeyId"])["KeyMetadata"]["CreationDate"]
    check(abs((old - new).total_seconds() - 86400) < 1, f"{KEY_AGE} moves CreationDate a day back ({old} -> {new})")
    bad_bodies: list[tuple[str, Any]] = [
        ("no body", None),
        ("a key missing", {"account_id": ACCOUNT, "region": KDST, "key_id": ours["KeyId"]}),
        ("seconds 0", {"account_id": ACCOUNT, "region": KDST, "key_id": ours["KeyId"], "seconds": 0}),
        ("seconds a string", {"account_id": ACCOUNT, "region": KDST, "key_id": ours["KeyId"], "seconds": "1"}),
    ]
    for what, bad in bad_bodies:
        status, body = post_json(endpoint, KEY_AGE, bad)
        check(status == 400 and body["error"] == "BadRequest", f"POST {KEY_AGE} with {what}: 400")
    status, body = post_json(endpoint, KEY_AGE, {"account_id": ACCOUNT, "region": KDST, "key_id": "nope", "seconds": 1})
    check(status == 404 and body["error"] == "NotFoundException", f"POST {KEY_AGE} for a missing key: 404")
    status, _ = post_json(endpoint, KEY_AGE, {}, method="GET")
    check(status == 405, f"GET {KEY_AGE}: 405")

    for i in range(7):
        kms.create_alias(AliasName=f"alias/paging/{i}", TargetKeyId=other["KeyId"])
    everything = kms.list_aliases(Limit=100)
    one_page = [a["AliasName"] for a in everything["Aliases"]]
    check(not everything["Truncated"] and "NextMarker" not in everything and len(one_page) >= 7,
          f"ListAliases with Limit 100 answers the region's {len(one_page)} aliases in one page")
    pages = list(kms.get_paginator("list_aliases").paginate(PaginationConfig={"PageSize": 3}))
    paged = [a["AliasName"] for page in pages for a in page["Aliases"]]
    check(paged == sorted(one_page) and len(pages) == -(-len(one_page) // 3)
          and all(p["Truncated"] for p in pages[:-1]) and not pages[-1]["Truncated"],
          f"ListAliases pages of 3 list every alias once, in {len(pages)} pages")
    check(len(kms.list_aliases()["Aliases"]) == min(50, len(one_page)), "ListAliases without Limit: at most 50")
    expect_error(lambda: kms.list_aliases(Limit=101), "ValidationException", "ListAliases with Limit 101")
    expect_error(lambda: kms.list_aliases(Marker="not-ours"), "ValidationException", "ListAliases with a foreign marker")

    out = kms.schedule_key_deletion(KeyId=ours["Arn"], PendingWindowInDays=30)
    described = kms.describe_key(KeyId=ours["KeyId"])["KeyMetadata"]
    check(described["KeyState"] == "PendingDeletion" and "DeletionDate" in out,
          "ScheduleKeyDeletion by ARN with 30 days: PendingDeletion")
    kms.cancel_key_deletion(KeyId=ours["Arn"])
    check(kms.describe_key(KeyId=ours["KeyId"])["KeyMetadata"]["KeyState"] == "Disabled",
          "CancelKeyDeletion leaves the key Disabled")


def check_audit_trail(client: Callable[[str, str], Any]) -> None:
    """The calls of the audit trail kind: CloudTrail, CloudWatch Logs and S3."""
    ct, ct_other, logs = client("cloudtrail", THOME), client("cloudtrail", TOTHER), client("logs", THOME)
    s3, s3_east = client("s3", THOME), client("s3", SRC)
    raw_ct, raw_s3 = RawCapture(ct), RawCapture(s3)

    # --- S3: location, lifecycle, versioning, Object Lock ------------------------------------------
    s3.create_bucket(Bucket="bw-trail-logs", CreateBucketConfiguration={"LocationConstraint": THOME})
    s3_east.create_bucket(Bucket="bw-trail-east")
    check(s3.get_bucket_location(Bucket="bw-trail-logs")["LocationConstraint"] == THOME, f"GetBucketLocation: {THOME}")
    check(s3_east.get_bucket_location(Bucket="bw-trail-east")["LocationConstraint"] is None,
          "GetBucketLocation of a us-east-1 bucket: no LocationConstraint")
    expect_error(lambda: s3.get_bucket_lifecycle_configuration(Bucket="bw-trail-logs"), "NoSuchLifecycleConfiguration",
                 "GetBucketLifecycleConfiguration without rules")
    rules = [
        {"ID": "trail-logs", "Filter": {"Prefix": "AWSLogs/"}, "Status": "Enabled", "Expiration": {"Days": 365},
         "NoncurrentVersionExpiration": {"NoncurrentDays": 30},
         "Transitions": [{"Days": 30, "StorageClass": "STANDARD_IA"}, {"Days": 90, "StorageClass": "GLACIER"}]},
        {"ID": "by-date", "Filter": {"Prefix": "old/"}, "Status": "Enabled",
         "Expiration": {"Date": datetime.datetime(2030, 1, 1, tzinfo=datetime.timezone.utc)}},
        {"ID": "tagged", "Filter": {"And": {"Prefix": "x/", "Tags": [{"Key": "k", "Value": "v"}, {"Key": "k2", "Value": "v2"}]}},
         "Status": "Disabled", "Expiration": {"Days": 7}},
        {"ID": "one-tag", "Filter": {"Tag": {"Key": "k", "Value": "v"}}, "Status": "Enabled", "Expiration": {"Days": 8}},
    ]
    s3.put_bucket_lifecycle_configuration(Bucket="bw-trail-logs", LifecycleConfiguration={"Rules": rules})
    got = s3.get_bucket_lifecycle_configuration(Bucket="bw-trail-logs")["Rules"]
    check(got == rules, "lifecycle round trip keeps IDs, filters, Expiration Days/Date, Transitions, NoncurrentVersionExpiration")
    check("<Date>2030-01-01T00:00:00Z</Date>" in raw_s3.body, "lifecycle Expiration.Date is an ISO 8601 timestamp")
    s3.get_bucket_versioning(Bucket="bw-trail-logs")
    check(re.search(r"<VersioningConfiguration[^>]*(/>|>\s*</VersioningConfiguration>)", raw_s3.body) is not None
          and "Status" not in raw_s3.body, "GetBucketVersioning, never set: an empty <VersioningConfiguration>")
    s3.put_bucket_versioning(Bucket="bw-trail-logs", VersioningConfiguration={"Status": "Enabled"})
    check(s3.get_bucket_versioning(Bucket="bw-trail-logs").get("Status") == "Enabled"
          and re.search(r"^<\?xml[^>]*>\s*<VersioningConfiguration[ >]", raw_s3.body) is not None,
          "GetBucketVersioning: Status Enabled under the <VersioningConfiguration> root (the Rust SDK checks it)")
    expect_error(lambda: s3.get_object_lock_configuration(Bucket="bw-trail-logs"), "ObjectLockConfigurationNotFoundError",
                 "GetObjectLockConfiguration without Object Lock")
    for bucket, retention in (("bw-trail-locked-days", {"Mode": "COMPLIANCE", "Days": 400}),
                              ("bw-trail-locked-years", {"Mode": "GOVERNANCE", "Years": 2})):
        s3.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True, CreateBucketConfiguration={"LocationConstraint": THOME})
        check(s3.get_bucket_versioning(Bucket=bucket).get("Status") == "Enabled", f"{bucket}: Object Lock enables versioning")
        s3.put_object_lock_configuration(Bucket=bucket, ObjectLockConfiguration={
            "ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": retention}})
        lock = s3.get_object_lock_configuration(Bucket=bucket)["ObjectLockConfiguration"]
        check(lock == {"ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": retention}},
              f"GetObjectLockConfiguration answers only the period set ({lock})")

    # --- CloudWatch Logs ------------------------------------------------------------------------------
    logs.create_log_group(logGroupName="/aws/cloudtrail/bw-audit")
    logs.create_log_group(logGroupName="/other/group")
    groups = logs.describe_log_groups(logGroupNamePrefix="/aws/cloudtrail/")["logGroups"]
    check([g["logGroupName"] for g in groups] == ["/aws/cloudtrail/bw-audit"] and "retentionInDays" not in groups[0],
          "DescribeLogGroups by prefix; no retentionInDays while it never expires")
    for days in (2, 0, 366, 4000):
        expect_error(lambda: logs.put_retention_policy(logGroupName="/aws/cloudtrail/bw-audit", retentionInDays=days),
                     "InvalidParameterException", f"PutRetentionPolicy {days} days (not an allowed value)")
    expect_error(lambda: logs.put_retention_policy(logGroupName="/aws/cloudtrail/nope", retentionInDays=400),
                 "ResourceNotFoundException", "PutRetentionPolicy on a missing log group")
    for days in (365, 400, 3653):
        logs.put_retention_policy(logGroupName="/aws/cloudtrail/bw-audit", retentionInDays=days)
        got_days = logs.describe_log_groups(logGroupNamePrefix="/aws/cloudtrail/")["logGroups"][0].get("retentionInDays")
        check(got_days == days, f"PutRetentionPolicy {days} days, DescribeLogGroups answers {got_days}")

    # --- CloudTrail -------------------------------------------------------------------------------------
    arn = ct.create_trail(Name="bw-audit", S3BucketName="bw-trail-logs")["TrailARN"]
    ct.create_trail(Name="bw-other", S3BucketName="bw-trail-logs")

    def described(names: list[str], c: Any = ct, **kw: Any) -> list[str]:
        return [t["TrailARN"] for t in c.describe_trails(trailNameList=names, **kw)["trailList"]]

    check(described(["bw-audit"]) == [arn] and described([arn]) == [arn],
          "DescribeTrails trailNameList by name or ARN answers that trail only")
    check(described(["nope"]) == [], "DescribeTrails of a name that matches no trail: empty trailList")
    check(len(described([])) == 2, "DescribeTrails without a list: every trail of the Region")
    selectors = ct.get_event_selectors(TrailName="bw-audit")
    check(selectors["EventSelectors"] == [{"ReadWriteType": "All", "IncludeManagementEvents": True, "DataResources": [],
                                           "ExcludeManagementEventSources": []}]
          and "AdvancedEventSelectors" not in selectors, "GetEventSelectors of a new trail: AWS's default selector")
    check(ct.get_event_selectors(TrailName=arn)["TrailARN"] == arn, "GetEventSelectors by ARN")
    status = ct.get_trail_status(Name=arn)
    check(status["IsLogging"] is False and "LatestDeliveryTime" not in status, "GetTrailStatus before StartLogging")
    ct.start_logging(Name=arn)
    status = ct.get_trail_status(Name="bw-audit")
    delivered = json.loads(raw_ct.body).get("LatestDeliveryTime")
    check(status["IsLogging"] is True and isinstance(delivered, (int, float)) and abs(delivered - time.time()) < 5
          and "LatestDeliveryError" not in status,
          f"GetTrailStatus while logging: LatestDeliveryTime {delivered} is epoch seconds, now")

    check(described([arn], ct_other) == [arn] and described(["bw-audit"], ct_other) == [],
          f"single-Region trail from {TOTHER}: found by ARN only")
    check(arn not in described([], ct_other), f"single-Region trail: not a shadow trail in {TOTHER}")
    updated = ct.update_trail(Name="bw-audit", IsMultiRegionTrail=True, EnableLogFileValidation=True,
                              IncludeGlobalServiceEvents=True)
    trail = ct.describe_trails(trailNameList=[arn])["trailList"][0]
    check(all(t["IsMultiRegionTrail"] and t["LogFileValidationEnabled"] and t["IncludeGlobalServiceEvents"]
              for t in (updated, trail)), "UpdateTrail applies multi-Region, log file validation, global events")
    check(arn in described([], ct_other) and arn not in described([], ct_other, includeShadowTrails=False),
          f"multi-Region trail listed in {TOTHER} unless includeShadowTrails is false")
    check(ct_other.describe_trails(trailNameList=[arn])["trailList"][0]["HomeRegion"] == THOME,
          f"the shadow trail in {TOTHER} names its HomeRegion")
    check(ct_other.get_trail_status(Name=arn)["IsLogging"] is True, "GetTrailStatus of a shadow trail by ARN")
    expect_error(lambda: ct_other.get_trail_status(Name="bw-audit"), "TrailNotFoundException",
                 "GetTrailStatus of a shadow trail by bare name")

    advanced = [{"Name": "management", "FieldSelectors": [{"Field": "eventCategory", "Equals": ["Management"]}]}]
    ct.put_event_selectors(TrailName="bw-audit", AdvancedEventSelectors=advanced)
    selectors = ct.get_event_selectors(TrailName="bw-audit")
    check(selectors.get("AdvancedEventSelectors") == advanced and "EventSelectors" not in selectors,
          "PutEventSelectors advanced: GetEventSelectors answers them only")
    ct.put_event_selectors(TrailName="bw-audit", EventSelectors=[{"ReadWriteType": "WriteOnly"}])
    selectors = ct.get_event_selectors(TrailName="bw-audit")
    check(selectors.get("EventSelectors") == [{"ReadWriteType": "WriteOnly", "IncludeManagementEvents": True,
                                              "DataResources": [], "ExcludeManagementEventSources": []}]
          and "AdvancedEventSelectors" not in selectors, "PutEventSelectors basic replaces the advanced ones")
    check(ct.describe_trails(trailNameList=["bw-audit"])["trailList"][0]["HasCustomEventSelectors"] is True
          and ct.describe_trails(trailNameList=["bw-other"])["trailList"][0]["HasCustomEventSelectors"] is False,
          "HasCustomEventSelectors once selectors were put")
    expect_error(lambda: ct.put_event_selectors(TrailName="bw-audit", EventSelectors=[{"ReadWriteType": "All"}],
                                                AdvancedEventSelectors=advanced),
                 "InvalidParameterCombinationException", "PutEventSelectors with both kinds")

    # LatestDeliveryTime must not depend on the emulator's time zone (moto used time.mktime).
    probe = subprocess.run(
        [sys.executable, "-c", "import sys, time; sys.path.insert(0, sys.argv[1]); import cloudtrail_trails; "
         "cloudtrail_trails.install(); from moto.cloudtrail.models import TrailStatus; s = TrailStatus(); "
         "s.start_logging(); print(s.description()['LatestDeliveryTime'] - time.time())", HERE],
        env={**os.environ, "TZ": "Asia/Tokyo"}, capture_output=True, text=True, timeout=60)
    check(probe.returncode == 0 and abs(float(probe.stdout)) < 5,
          f"LatestDeliveryTime is right under TZ=Asia/Tokyo (off by {probe.stdout.strip() or probe.stderr[-200:]} s)")


if __name__ == "__main__":
    main()
