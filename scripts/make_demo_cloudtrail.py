"""Write the bundled demo CloudTrail logs: `python scripts/make_demo_cloudtrail.py [OUT_DIR]`.

The story behind the `payments-prod` demo incident (account 210987654321, eu-west-1): GuardDuty saw
anonymous Kubernetes API access from 198.51.100.23 on 2026-11-20 from 09:02. From that address the
node role's credentials list buckets, read card exports, create the IAM user `svc-backup` with
AdministratorAccess and an access key; `svc-backup` then launches instances in us-east-1, creates a
role trusted by an outside account and fails to delete the trail. Around it: ordinary node-role,
responder, root sign-in, SSO and AWS-service activity, errors, S3 data events, four days, two regions.

The output is deterministic (fixed content, gzip mtime 0), so re-running it changes no byte and the
tests' expected rows stay valid. Files follow the S3 layout and name format of CloudTrail UG "Finding
your CloudTrail log files"; the folder date is the delivery date, and one record from 2026-11-20 is
delivered on 2026-11-21, as happens near midnight. A digest file and an empty file are included.
"""

import gzip
import hashlib
import io
import json
import sys
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ACCOUNT = "210987654321"
OUT = Path(__file__).resolve().parent.parent / "incidents" / "demo" / "cloudtrail"
ATTACKER_IP = "198.51.100.23"
ATTACKER_IP_2 = "203.0.113.77"
NODE_IP = "10.20.31.14"
CLI_UA = "aws-cli/2.17.40 md/awscrt#0.21.2 ua/2.0 os/linux#6.1.0 md/arch#x86_64 lang/python#3.11.9"
BOTO_UA = "Boto3/1.34.162 md/Botocore#1.34.162 ua/2.0 os/linux#5.15.0 md/arch#x86_64 lang/python#3.10.12"
NODE_UA = "aws-sdk-go/1.55.5 (go1.22.6; linux; amd64) kubelet/v1.30.4-eks-a737599"
CONSOLE_UA = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 Version/17.6 Safari/605.1.15"

NODE_ROLE = {
    "type": "AssumedRole",
    "principalId": "AROAQXAMPLENODEROLE01:i-0a1b2c3d4e5f60718",
    "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/payments-prod-node-role/i-0a1b2c3d4e5f60718",
    "accountId": ACCOUNT,
    "accessKeyId": "ASIAQXAMPLENODEKEY01",
    "sessionContext": {
        "sessionIssuer": {
            "type": "Role",
            "principalId": "AROAQXAMPLENODEROLE01",
            "arn": f"arn:aws:iam::{ACCOUNT}:role/payments-prod-node-role",
            "accountId": ACCOUNT,
            "userName": "payments-prod-node-role",
        },
        "attributes": {"creationDate": "2026-11-18T00:00:00Z", "mfaAuthenticated": "false"},
        "ec2RoleDelivery": "2.0",
    },
}
ALICE = {
    "type": "IAMUser",
    "principalId": "AIDAQXAMPLEALICE00001",
    "arn": f"arn:aws:iam::{ACCOUNT}:user/alice",
    "accountId": ACCOUNT,
    "accessKeyId": "AKIAQXAMPLEALICEKEY1",
    "userName": "alice",
}
SVC_BACKUP = {
    "type": "IAMUser",
    "principalId": "AIDAQXAMPLESVCBACKUP1",
    "arn": f"arn:aws:iam::{ACCOUNT}:user/svc-backup",
    "accountId": ACCOUNT,
    "accessKeyId": "AKIAQXAMPLESVCBKKEY1",
    "userName": "svc-backup",
}
SSO_BOB = {
    "type": "AssumedRole",
    "principalId": "AROAQXAMPLESSOADMIN01:bob@example.com",
    "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/AWSReservedSSO_AdministratorAccess_0f1e2d3c4b5a6978/bob@example.com",
    "accountId": ACCOUNT,
    "accessKeyId": "ASIAQXAMPLESSOBOBKEY",
    "sessionContext": {
        "sessionIssuer": {
            "type": "Role",
            "principalId": "AROAQXAMPLESSOADMIN01",
            "arn": f"arn:aws:iam::{ACCOUNT}:role/aws-reserved/sso.amazonaws.com/"
            "AWSReservedSSO_AdministratorAccess_0f1e2d3c4b5a6978",
            "accountId": ACCOUNT,
            "userName": "AWSReservedSSO_AdministratorAccess_0f1e2d3c4b5a6978",
        },
        "attributes": {"creationDate": "2026-11-19T08:00:00Z", "mfaAuthenticated": "false"},
    },
}
ROOT = {"type": "Root", "principalId": ACCOUNT, "arn": f"arn:aws:iam::{ACCOUNT}:root", "accountId": ACCOUNT}
EKS_SERVICE = {"type": "AWSService", "invokedBy": "eks.amazonaws.com"}
AUTOSCALING_SERVICE = {"type": "AWSService", "invokedBy": "autoscaling.amazonaws.com"}

# (event time, region, identity, event source, event name, source IP, user agent, extra fields)
E = tuple[str, str, dict[str, Any], str, str, str, str, dict[str, Any]]


def data(bucket: str, key: str) -> dict[str, Any]:
    """The fields of an S3 object-level (data) event."""
    return {
        "requestParameters": {"bucketName": bucket, "Host": f"{bucket}.s3.eu-west-1.amazonaws.com", "key": key},
        "readOnly": True,
        "eventCategory": "Data",
        "managementEvent": False,
        "resources": [
            {"type": "AWS::S3::Object", "ARN": f"arn:aws:s3:::{bucket}/{key}"},
            {"accountId": ACCOUNT, "type": "AWS::S3::Bucket", "ARN": f"arn:aws:s3:::{bucket}"},
        ],
        "additionalEventData": {"bytesTransferredOut": 48213, "x-amz-id-2": "demo"},
    }


def denied(message: str) -> dict[str, Any]:
    return {"errorCode": "AccessDenied", "errorMessage": message}


EU, US = "eu-west-1", "us-east-1"
EVENTS: list[E] = [
    # --- 2026-11-18: an ordinary day -------------------------------------------------------------
    *[
        (f"2026-11-18T{h:02d}:14:07Z", EU, NODE_ROLE, "ec2.amazonaws.com", "DescribeInstances", NODE_IP, NODE_UA, {})
        for h in (1, 7, 13, 19)
    ],
    *[
        (
            f"2026-11-18T{h:02d}:20:31Z",
            EU,
            NODE_ROLE,
            "ecr.amazonaws.com",
            "GetAuthorizationToken",
            NODE_IP,
            NODE_UA,
            {},
        )
        for h in (2, 14)
    ],
    ("2026-11-18T08:31:10Z", EU, ALICE, "eks.amazonaws.com", "ListClusters", "192.0.2.10", CLI_UA, {}),
    (
        "2026-11-18T08:31:42Z",
        EU,
        ALICE,
        "eks.amazonaws.com",
        "DescribeCluster",
        "192.0.2.10",
        CLI_UA,
        {"requestParameters": {"name": "payments-prod"}},
    ),
    (
        "2026-11-18T09:12:00Z",
        EU,
        EKS_SERVICE,
        "sts.amazonaws.com",
        "AssumeRole",
        "eks.amazonaws.com",
        "eks.amazonaws.com",
        {
            "requestParameters": {
                "roleArn": f"arn:aws:iam::{ACCOUNT}:role/payments-prod-cluster-role",
                "roleSessionName": "EKS",
            }
        },
    ),
    (
        "2026-11-18T11:05:19Z",
        EU,
        NODE_ROLE,
        "s3.amazonaws.com",
        "GetObject",
        NODE_IP,
        BOTO_UA,
        data("payments-config", "app/settings.json"),
    ),
    (
        "2026-11-18T16:45:02Z",
        EU,
        ALICE,
        "iam.amazonaws.com",
        "ListAttachedRolePolicies",
        "192.0.2.10",
        CLI_UA,
        {"requestParameters": {"roleName": "payments-prod-node-role"}},
    ),
    # --- 2026-11-19: root sign-in, SSO admin work, a throttled call ----------------------------------
    (
        "2026-11-19T07:58:44Z",
        US,
        ROOT,
        "signin.amazonaws.com",
        "ConsoleLogin",
        "192.0.2.44",
        CONSOLE_UA,
        {
            "eventType": "AwsConsoleSignIn",
            "responseElements": {"ConsoleLogin": "Success"},
            "additionalEventData": {"MFAUsed": "Yes", "MobileVersion": "No"},
        },
    ),
    (
        "2026-11-19T08:03:12Z",
        EU,
        SSO_BOB,
        "iam.amazonaws.com",
        "CreateRole",
        "192.0.2.71",
        CONSOLE_UA,
        {"requestParameters": {"roleName": "payments-ci-deploy", "path": "/"}},
    ),
    (
        "2026-11-19T08:04:55Z",
        EU,
        SSO_BOB,
        "iam.amazonaws.com",
        "AttachRolePolicy",
        "192.0.2.71",
        CONSOLE_UA,
        {
            "requestParameters": {
                "roleName": "payments-ci-deploy",
                "policyArn": "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryPowerUser",
            }
        },
    ),
    (
        "2026-11-19T08:06:30Z",
        EU,
        SSO_BOB,
        "eks.amazonaws.com",
        "DescribeCluster",
        "192.0.2.71",
        CONSOLE_UA,
        {"requestParameters": {"name": "payments-prod"}},
    ),
    (
        "2026-11-19T12:00:01Z",
        EU,
        ALICE,
        "ec2.amazonaws.com",
        "DescribeInstances",
        "192.0.2.10",
        CLI_UA,
        {"errorCode": "Client.RequestLimitExceeded", "errorMessage": "Request limit exceeded."},
    ),
    ("2026-11-19T12:00:03Z", EU, ALICE, "ec2.amazonaws.com", "DescribeInstances", "192.0.2.10", CLI_UA, {}),
    (
        "2026-11-19T15:30:00Z",
        EU,
        AUTOSCALING_SERVICE,
        "ec2.amazonaws.com",
        "RunInstances",
        "autoscaling.amazonaws.com",
        "autoscaling.amazonaws.com",
        {"requestParameters": {"instanceType": "m6i.large", "minCount": 1, "maxCount": 1}},
    ),
    *[
        (f"2026-11-19T{h:02d}:14:07Z", EU, NODE_ROLE, "ec2.amazonaws.com", "DescribeInstances", NODE_IP, NODE_UA, {})
        for h in (1, 13)
    ],
    # --- 2026-11-20: the incident --------------------------------------------------------------------
    ("2026-11-20T01:14:07Z", EU, NODE_ROLE, "ec2.amazonaws.com", "DescribeInstances", NODE_IP, NODE_UA, {}),
    ("2026-11-20T09:40:12Z", EU, NODE_ROLE, "sts.amazonaws.com", "GetCallerIdentity", ATTACKER_IP, CLI_UA, {}),
    ("2026-11-20T09:41:05Z", EU, NODE_ROLE, "s3.amazonaws.com", "ListBuckets", ATTACKER_IP, CLI_UA, {}),
    (
        "2026-11-20T09:42:30Z",
        EU,
        NODE_ROLE,
        "s3.amazonaws.com",
        "GetObject",
        ATTACKER_IP,
        CLI_UA,
        data("payments-exports", "2026/11/cards.csv"),
    ),
    (
        "2026-11-20T09:42:58Z",
        EU,
        NODE_ROLE,
        "s3.amazonaws.com",
        "GetObject",
        ATTACKER_IP,
        CLI_UA,
        data("payments-exports", "2026/11/payouts.csv"),
    ),
    ("2026-11-20T09:43:10Z", EU, NODE_ROLE, "iam.amazonaws.com", "ListUsers", ATTACKER_IP, CLI_UA, {}),
    (
        "2026-11-20T09:44:02Z",
        EU,
        NODE_ROLE,
        "iam.amazonaws.com",
        "CreateUser",
        ATTACKER_IP,
        CLI_UA,
        {
            "requestParameters": {"userName": "svc-backup"},
            "responseElements": {"user": {"userName": "svc-backup", "userId": "AIDAQXAMPLESVCBACKUP1"}},
        },
    ),
    (
        "2026-11-20T09:44:40Z",
        EU,
        NODE_ROLE,
        "iam.amazonaws.com",
        "AttachUserPolicy",
        ATTACKER_IP,
        CLI_UA,
        {"requestParameters": {"userName": "svc-backup", "policyArn": "arn:aws:iam::aws:policy/AdministratorAccess"}},
    ),
    (
        "2026-11-20T09:45:15Z",
        EU,
        NODE_ROLE,
        "iam.amazonaws.com",
        "CreateAccessKey",
        ATTACKER_IP,
        CLI_UA,
        {"requestParameters": {"userName": "svc-backup"}},
    ),
    (
        "2026-11-20T09:46:01Z",
        EU,
        NODE_ROLE,
        "secretsmanager.amazonaws.com",
        "GetSecretValue",
        ATTACKER_IP,
        CLI_UA,
        {
            **denied(
                "User: arn:aws:sts::210987654321:assumed-role/payments-prod-node-role/i-0a1b2c3d4e5f60718 is not "
                "authorized to perform: secretsmanager:GetSecretValue"
            ),
            "errorCode": "AccessDenied",
            "requestParameters": {"secretId": "payments/db"},
        },
    ),
    ("2026-11-20T10:05:00Z", EU, SVC_BACKUP, "sts.amazonaws.com", "GetCallerIdentity", ATTACKER_IP, BOTO_UA, {}),
    ("2026-11-20T10:06:30Z", US, SVC_BACKUP, "ec2.amazonaws.com", "DescribeInstances", ATTACKER_IP, BOTO_UA, {}),
    (
        "2026-11-20T10:07:10Z",
        US,
        SVC_BACKUP,
        "ec2.amazonaws.com",
        "DescribeImages",
        ATTACKER_IP,
        BOTO_UA,
        {
            "requestParameters": {
                "filterSet": {"items": [{"name": "name", "valueSet": {"items": [{"value": "ubuntu*"}]}}]}
            }
        },
    ),
    (
        "2026-11-20T10:07:45Z",
        US,
        SVC_BACKUP,
        "ec2.amazonaws.com",
        "RunInstances",
        ATTACKER_IP,
        BOTO_UA,
        {
            "requestParameters": {
                "instanceType": "p4d.24xlarge",
                "minCount": 4,
                "maxCount": 4,
                "iamInstanceProfile": {"arn": f"arn:aws:iam::{ACCOUNT}:instance-profile/backup-admin"},
            },
            "responseElements": {"instancesSet": {"items": [{"instanceId": "i-0badc0ffee0000001"}]}},
        },
    ),
    (
        "2026-11-20T10:08:10Z",
        US,
        SVC_BACKUP,
        "ec2.amazonaws.com",
        "CreateTags",
        ATTACKER_IP,
        BOTO_UA,
        {
            "requestParameters": {
                "resourcesSet": {"items": [{"resourceId": "i-0badc0ffee0000001"}]},
                "tagSet": {"items": [{"key": "Name", "value": "backup-worker"}]},
            }
        },
    ),
    (
        "2026-11-20T10:10:00Z",
        EU,
        SVC_BACKUP,
        "iam.amazonaws.com",
        "CreateRole",
        ATTACKER_IP,
        BOTO_UA,
        {
            "requestParameters": {
                "roleName": "backup-admin",
                "assumeRolePolicyDocument": '{"Statement":[{"Effect":"Allow","Principal":'
                '{"AWS":"arn:aws:iam::999988887777:root"},"Action":"sts:AssumeRole"}]}',
            }
        },
    ),
    (
        "2026-11-20T10:11:00Z",
        EU,
        SVC_BACKUP,
        "iam.amazonaws.com",
        "AttachRolePolicy",
        ATTACKER_IP,
        BOTO_UA,
        {"requestParameters": {"roleName": "backup-admin", "policyArn": "arn:aws:iam::aws:policy/AdministratorAccess"}},
    ),
    (
        "2026-11-20T10:12:30Z",
        EU,
        SVC_BACKUP,
        "cloudtrail.amazonaws.com",
        "DeleteTrail",
        ATTACKER_IP,
        BOTO_UA,
        {
            **denied(
                "User: arn:aws:iam::210987654321:user/svc-backup is not authorized to perform: "
                "cloudtrail:DeleteTrail with an explicit deny in a service control policy"
            ),
            "requestParameters": {"name": "org-trail"},
        },
    ),
    (
        "2026-11-20T10:20:00Z",
        EU,
        SVC_BACKUP,
        "sts.amazonaws.com",
        "GetSessionToken",
        ATTACKER_IP,
        BOTO_UA,
        {"requestParameters": {"durationSeconds": 129600}},
    ),
    ("2026-11-20T11:02:19Z", US, SVC_BACKUP, "s3.amazonaws.com", "ListBuckets", ATTACKER_IP_2, BOTO_UA, {}),
    (
        "2026-11-20T11:03:40Z",
        US,
        SVC_BACKUP,
        "ec2.amazonaws.com",
        "UpdateSecurityGroupRuleDescriptionsIngress",
        ATTACKER_IP_2,
        BOTO_UA,
        {"requestParameters": {"groupId": "sg-0fedcba987654321"}},
    ),
    ("2026-11-20T13:14:07Z", EU, NODE_ROLE, "ec2.amazonaws.com", "DescribeInstances", NODE_IP, NODE_UA, {}),
    ("2026-11-20T23:58:00Z", EU, NODE_ROLE, "ecr.amazonaws.com", "GetAuthorizationToken", NODE_IP, NODE_UA, {}),
    # --- 2026-11-21: the responders clean up --------------------------------------------------------
    (
        "2026-11-21T08:10:00Z",
        EU,
        ALICE,
        "iam.amazonaws.com",
        "ListAccessKeys",
        "192.0.2.10",
        CLI_UA,
        {"requestParameters": {"userName": "svc-backup"}},
    ),
    (
        "2026-11-21T08:11:30Z",
        EU,
        ALICE,
        "iam.amazonaws.com",
        "UpdateAccessKey",
        "192.0.2.10",
        CLI_UA,
        {"requestParameters": {"userName": "svc-backup", "accessKeyId": "AKIAQXAMPLESVCBKKEY1", "status": "Inactive"}},
    ),
    (
        "2026-11-21T08:12:05Z",
        EU,
        ALICE,
        "iam.amazonaws.com",
        "DetachUserPolicy",
        "192.0.2.10",
        CLI_UA,
        {"requestParameters": {"userName": "svc-backup", "policyArn": "arn:aws:iam::aws:policy/AdministratorAccess"}},
    ),
    (
        "2026-11-21T08:20:44Z",
        US,
        ALICE,
        "ec2.amazonaws.com",
        "TerminateInstances",
        "192.0.2.10",
        CLI_UA,
        {"requestParameters": {"instancesSet": {"items": [{"instanceId": "i-0badc0ffee0000001"}]}}},
    ),
    (
        "2026-11-21T08:25:00Z",
        EU,
        ALICE,
        "eks.amazonaws.com",
        "UpdateClusterConfig",
        "192.0.2.10",
        CLI_UA,
        {
            "requestParameters": {
                "name": "payments-prod",
                "logging": {"clusterLogging": [{"types": ["audit"], "enabled": True}]},
            }
        },
    ),
]


def record(index: int, event: E) -> dict[str, Any]:
    when, region, identity, source, name, address, agent, extra = event
    seed = hashlib.sha256(f"{index}:{when}:{name}".encode()).hexdigest()
    read_only = name.startswith(("Describe", "List", "Get")) and name != "GetSessionToken"
    body: dict[str, Any] = {
        "eventVersion": "1.11",
        "userIdentity": identity,
        "eventTime": when,
        "eventSource": source,
        "eventName": name,
        "awsRegion": region,
        "sourceIPAddress": address,
        "userAgent": agent,
        "requestParameters": None,
        "responseElements": None,
        "requestID": f"{seed[:8]}-{seed[8:12]}-{seed[12:16]}-{seed[16:20]}-{seed[20:32]}",
        "eventID": f"{seed[32:40]}-{seed[40:44]}-{seed[44:48]}-{seed[48:52]}-{seed[52:64]}",
        "readOnly": read_only,
        "eventType": "AwsApiCall",
        "managementEvent": True,
        "recipientAccountId": ACCOUNT,
        "eventCategory": "Management",
        "tlsDetails": {
            "tlsVersion": "TLSv1.3",
            "cipherSuite": "TLS_AES_128_GCM_SHA256",
            "clientProvidedHostHeader": f"{source.split('.')[0]}.{region}.amazonaws.com",
        },
    }
    body.update(extra)
    if identity.get("type") == "AWSService":
        body.pop("tlsDetails")
        body["sharedEventID"] = f"{seed[:8]}-shared"
    return body


def delivery(when: str) -> datetime:
    """Delivered at the next quarter hour after the event, plus five minutes (about CloudTrail's delay)."""
    at = datetime.strptime(when, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    quarter = at.replace(minute=at.minute - at.minute % 15, second=0) + timedelta(minutes=15)
    return quarter + timedelta(minutes=5)


def gz(payload: bytes) -> bytes:
    buffer = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0) as handle:
        handle.write(payload)
    return buffer.getvalue()


def key_for(region: str, delivered: datetime, content: bytes) -> str:
    unique = hashlib.sha256(content).hexdigest()[:16]
    return (
        f"AWSLogs/{ACCOUNT}/CloudTrail/{region}/{delivered:%Y/%m/%d}/"
        f"{ACCOUNT}_CloudTrail_{region}_{delivered:%Y%m%dT%H%MZ}_{unique}.json.gz"
    )


def build() -> dict[str, bytes]:
    batches: dict[tuple[str, datetime], list[dict[str, Any]]] = defaultdict(list)
    for index, event in enumerate(EVENTS):
        batches[(event[1], delivery(event[0]))].append(record(index, event))
    files = {}
    for (region, delivered), records in sorted(batches.items()):
        content = json.dumps({"Records": records}, separators=(",", ":")).encode()
        files[key_for(region, delivered, content)] = gz(content)
    empty = json.dumps({"Records": []}).encode()
    files[key_for(EU, datetime(2026, 11, 19, 3, 5, tzinfo=UTC), empty)] = gz(empty)
    digest = json.dumps({"awsAccountId": ACCOUNT, "digestStartTime": "2026-11-20T09:00:00Z"}).encode()
    files[
        f"AWSLogs/{ACCOUNT}/CloudTrail-Digest/{EU}/2026/11/20/"
        f"{ACCOUNT}_CloudTrail-Digest_{EU}_org-trail_{EU}_20261120T100000Z.json.gz"
    ] = gz(digest)
    return files


def main(out: Path) -> None:
    written = build()
    for key, content in written.items():
        path = out / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    print(f"{len(written)} files, {sum(map(len, written.values()))} bytes, {len(EVENTS)} records under {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT)
