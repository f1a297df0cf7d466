#!/usr/bin/env python3
"""Each function's IAM role as CloudFormation creates it, held against
the calls the function really makes.

The template is expanded by the SAM translator (as CloudFormation's
AWS::Serverless transform does): inline policies, policy templates and the
managed policies SAM attaches. Then:

  roles.py load  --endpoint URL --out DIR
      On a moto server started with INITIAL_NO_AUTH_ACTION_COUNT=3: an
      administrator for the stack and the tests (DIR/admin.env), and one
      role per function (DIR/roles.json, for fanout-local --lambda-roles).
      moto checks actions only, and a statement naming a real ARN never
      matches there, so the roles are loaded with their actions on "*";
      resources are checked by `check`.

  roles.py check --calls DIR [--report FILE]
      Every call in DIR/*.jsonl (fanout-local --lambda-call-log) is held
      against its function's statements, resolved with that stack's ARNs,
      by IAM's matching rules (wildcards in actions and resources). Fails
      on a call no statement allows, and on a grant no call used unless it
      is kept on purpose (KEPT, with the reason). The report lists, per
      function, the calls recorded and the grants left unused.

  roles.py show
      The translated statements, per function.
"""

import argparse
import json
import os
import pathlib
import re
import sys
from collections import defaultdict

ROOT = pathlib.Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "infra" / "template.yaml"

# The functions, by the template's logical id.
FUNCTIONS = {
    "AuthorizerFunction": "authorizer",
    "ConnectFunction": "connect",
    "DisconnectFunction": "disconnect",
    "MessageFunction": "message",
    "PlannerFunction": "planner",
    "BroadcasterFunction": "broadcaster",
    "SweeperFunction": "sweeper",
}

# The AWS-managed policies SAM attaches, as AWS publishes them. Lambda
# itself uses them with the function's role, never the function's code:
# so no recorded call is expected to use them.
MANAGED = {
    "AWSLambdaBasicExecutionRole": (
        "service-role/",
        ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
        "Lambda writes the function's log lines to CloudWatch Logs with it",
    ),
    "AWSLambdaSQSQueueExecutionRole": (
        "service-role/",
        ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes",
         "logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
        "the SQS event source mapping polls and deletes the queue's messages with it",
    ),
    "AWSLambdaDynamoDBExecutionRole": (
        "service-role/",
        ["dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator",
         "dynamodb:ListStreams", "logs:CreateLogGroup", "logs:CreateLogStream",
         "logs:PutLogEvents"],
        "the stream event source mapping reads the table's stream with it",
    ),
    "AWSXrayWriteOnlyAccess": (
        "",
        ["xray:PutTraceSegments", "xray:PutTelemetryRecords", "xray:GetSamplingRules",
         "xray:GetSamplingTargets", "xray:GetSamplingStatisticSummaries"],
        "Lambda's X-Ray integration sends the traces (TracingMode Active only)",
    ),
}

# Inline grants no function code uses, kept on purpose:
# (function, action, resource as the template writes it) -> why.
CONNECTIONS = "arn:aws:execute-api:${AWS::Region}:${AWS::AccountId}:${WebSocketApi}/${StageName}"
KEPT = {
    ("sweeper", "sqs:SendMessage", "${SweeperDeadLetterQueue.Arn}"):
        "the stream mapping's on-failure destination: Lambda, not the code, "
        "sends a failed batch's record there, with the function's role",
    ("sweeper", "execute-api:ManageConnections", CONNECTIONS + "/DELETE/@connections/*"):
        "closes a connection DynamoDB's TTL removed while its socket is still open "
        "(handlers/sweeper.rs, sweep_connection); the suite that expires a connection "
        "moves the stack's clock, which bootstraps do not share, so it runs that path "
        "in-process only",
    ("message", "execute-api:ManageConnections", CONNECTIONS + "/DELETE/@connections/*"):
        "closes a connection whose token expired when its next frame arrives "
        "(handlers/message.rs, close_expired); the local gateway closes such sockets "
        "at expiry itself, so no suite's frame reaches the function after expiry",
    ("planner", "dynamodb:DeleteItem", "${Table.Arn}"):
        "releases an event's idempotency claim when planning fails before the event "
        "had a seq, so the redelivery plans it (handlers/planner.rs, release_event); "
        "the suites inject no store failure into the planner",
}

# moto names the action after the operation; IAM authorizes SQS's batch
# operations through the single ones. Added to the roles loaded into moto.
MOTO_ALIASES = {
    "sqs:SendMessage": ["sqs:SendMessageBatch"],
    "sqs:DeleteMessage": ["sqs:DeleteMessageBatch"],
    "sqs:ChangeMessageVisibility": ["sqs:ChangeMessageVisibilityBatch"],
}

ADMIN = "fanout-test-admin"


# ------------------------------------------------------------ translation

def translate(template=TEMPLATE, parameters=None):
    """The template as CloudFormation sees it after the SAM transform."""
    from samcli.yamlhelper import yaml_parse
    from samtranslator.translator.transform import transform

    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    sam = yaml_parse(pathlib.Path(template).read_text())
    # The translator wants code in S3; where it is does not matter here.
    sam["Globals"]["Function"]["CodeUri"] = "s3://placeholder/code.zip"

    class Loader:
        def load(self):
            return {name: f"arn:aws:iam::aws:policy/{prefix}{name}"
                    for name, (prefix, _, _) in MANAGED.items()}

    return transform(sam, parameters or {}, Loader())


def as_list(v):
    return v if isinstance(v, list) else [v]


def roles(cfn):
    """Per function: its inline statements and managed policy names."""
    found = {}
    for logical, function in FUNCTIONS.items():
        fn = cfn["Resources"][logical]
        role_ref = fn["Properties"]["Role"]["Fn::GetAtt"][0]
        role = cfn["Resources"][role_ref]["Properties"]
        statements = []
        for policy in role.get("Policies", []):
            for s in as_list(policy["PolicyDocument"]["Statement"]):
                for key in ("NotAction", "NotResource", "Condition"):
                    if key in s:
                        raise SystemExit(f"{function}: {key} in a statement is not handled here")
                statements.append(s)
        managed = []
        for arn in role.get("ManagedPolicyArns", []):
            name = arn.rsplit("/", 1)[-1]
            if name not in MANAGED:
                raise SystemExit(f"{function}: managed policy {arn} is not described in MANAGED")
            managed.append(name)
        found[function] = {"role": role_ref, "statements": statements, "managed": managed}
    return found


# -------------------------------------------------------------- resolution

def render(v):
    """A resource as the template writes it, for reports and KEPT."""
    if isinstance(v, str):
        return v
    if "Ref" in v:
        return "${" + v["Ref"] + "}"
    if "Fn::GetAtt" in v:
        a = v["Fn::GetAtt"]
        return "${" + (".".join(a) if isinstance(a, list) else a) + "}"
    if "Fn::Sub" in v:
        return v["Fn::Sub"] if isinstance(v["Fn::Sub"], str) else v["Fn::Sub"][0]
    return json.dumps(v)


def resolve(v, stack):
    """A resource's ARN in the stack `stack` (its call log's first line)."""
    region, account = stack["region"], stack["account"]
    pseudo = {"AWS::Region": region, "AWS::AccountId": account,
              "AWS::Partition": "aws", "AWS::URLSuffix": "amazonaws.com"}

    def lookup(name, attribute="Ref"):
        if attribute == "Ref" and name in pseudo:
            return pseudo[name]
        if attribute == "Ref" and name in stack["parameters"]:
            return stack["parameters"][name]
        try:
            return stack["resources"][name][attribute]
        except KeyError:
            return f"<{name}.{attribute} is not in this stack>"

    if isinstance(v, str):
        return v
    if "Ref" in v:
        return lookup(v["Ref"])
    if "Fn::GetAtt" in v:
        a = v["Fn::GetAtt"]
        name, attribute = a if isinstance(a, list) else a.split(".", 1)
        return lookup(name, attribute)
    if "Fn::Sub" in v:
        text = v["Fn::Sub"] if isinstance(v["Fn::Sub"], str) else v["Fn::Sub"][0]

        def sub(m):
            name = m.group(1)
            if "." in name and name not in pseudo:
                return lookup(*name.split(".", 1))
            return lookup(name)
        return re.sub(r"\$\{([^}]+)\}", sub, text)
    if "Fn::Join" in v:
        sep, parts = v["Fn::Join"]
        return sep.join(resolve(p, stack) for p in parts)
    raise SystemExit(f"cannot resolve {v}")


# ---------------------------------------------------------------- matching

def matches(pattern, value, case_sensitive):
    """IAM's wildcards: * any run of characters, ? one character."""
    if not case_sensitive:
        pattern, value = pattern.lower(), value.lower()
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value) is not None


def grants(statements):
    """(effect, action pattern, resource expression) for every pair."""
    for s in statements:
        for action in as_list(s["Action"]):
            for resource in as_list(s["Resource"]):
                yield s["Effect"], action, resource


def matching(call, statements, stack):
    """The (effect, action, resource) grants that name `call`."""
    return [(effect, action, resource) for effect, action, resource in grants(statements)
            if matches(action, call["action"], False)
            and matches(resolve(resource, stack), call["resource"], True)]


def permits(named):
    """Whether grants that name a call allow it; a Deny wins."""
    effects = {effect for effect, _, _ in named}
    return "Allow" in effects and "Deny" not in effects


def allowed(call, statements, stack):
    """Whether the statements allow `call`."""
    return permits(matching(call, statements, stack))


# -------------------------------------------------------------------- load

def load(endpoint, out, template=TEMPLATE):
    import boto3

    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    kw = dict(endpoint_url=endpoint, region_name="us-east-1")
    # The three requests moto lets through unsigned (INITIAL_NO_AUTH_ACTION_COUNT=3).
    iam = boto3.client("iam", aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap", **kw)
    user = iam.create_user(UserName=ADMIN)["User"]
    iam.put_user_policy(UserName=ADMIN, PolicyName="everything", PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
    key = iam.create_access_key(UserName=ADMIN)["AccessKey"]
    admin = dict(aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"])
    iam = boto3.client("iam", **admin, **kw)

    trust = json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"AWS": user["Arn"]}, "Action": "sts:AssumeRole"}]})
    arns = {}
    for function, role in roles(translate(template)).items():
        actions = set()
        for effect, action, _ in grants(role["statements"]):
            if effect == "Allow":
                actions.add(action)
                actions.update(MOTO_ALIASES.get(action, []))
        for name in role["managed"]:
            actions.update(MANAGED[name][1])
        created = iam.create_role(RoleName=f"fanout-{function}", AssumeRolePolicyDocument=trust)
        iam.put_role_policy(RoleName=f"fanout-{function}", PolicyName=role["role"], PolicyDocument=json.dumps({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": sorted(actions), "Resource": "*"}]}))
        arns[function] = created["Role"]["Arn"]
    (out / "roles.json").write_text(json.dumps(arns, indent=2) + "\n")
    (out / "admin.env").write_text(
        f"AWS_ACCESS_KEY_ID={key['AccessKeyId']}\nAWS_SECRET_ACCESS_KEY={key['SecretAccessKey']}\n")
    print(f"moto at {endpoint}: administrator {ADMIN} and {len(arns)} function roles ({out / 'roles.json'})")


# ------------------------------------------------------------------- check

def read_calls(directory):
    """(stack, call) for every call of every stack logged in `directory`."""
    found = []
    for path in sorted(pathlib.Path(directory).glob("*.jsonl")):
        stack = None
        for line in path.read_text().splitlines():
            record = json.loads(line)
            if record["kind"] == "stack":
                stack = record
            elif stack is None:
                raise SystemExit(f"{path}: a call before the stack's resources")
            else:
                found.append((stack, record))
    return found


def check(directory, report_path=None, template=TEMPLATE):
    functions = roles(translate(template))
    calls = read_calls(directory)
    if not calls:
        raise SystemExit(f"no calls recorded in {directory}: did the suites run with --lambda-call-log?")
    violations = []
    used = set()
    seen = defaultdict(lambda: defaultdict(lambda: {"count": 0, "status": set()}))
    for stack, call in calls:
        function = call["function"]
        role = functions[function]
        # One row per kind of call: test prefixes and connection ids vary.
        generic = re.sub(r"e2e[0-9a-f]{10}-", "<prefix>", call["resource"])
        generic = re.sub(r"@connections/.*$", "@connections/<id>", generic)
        generic = re.sub(r"(:secret:.*)-[A-Za-z0-9]{6}$", r"\1-<suffix>", generic)
        entry = seen[function][(call["operation"], call["action"], generic)]
        entry["count"] += 1
        entry["status"].add(call["status"])
        if call["status"] == 403:
            violations.append(f"{function}: {call['operation']} on {call['resource']} was refused "
                              f"by moto's IAM (AccessDenied): {role['role']} lacks {call['action']}")
        named = matching(call, role["statements"], stack)
        if not permits(named):
            granted = [render(r) for e, a, r in grants(role["statements"])
                       if e == "Allow" and matches(a, call["action"], False)]
            violations.append(
                f"{function}: {call['operation']} on {call['resource']} needs {call['action']} on that "
                f"resource, which {role['role']} does not grant"
                + (f" (it grants {call['action']} on {', '.join(granted)} only)" if granted else ""))
        used.update((function, action, render(resource)) for effect, action, resource in named
                    if effect == "Allow")

    unused, kept = [], []
    for function, role in functions.items():
        for effect, action, resource in grants(role["statements"]):
            key = (function, action, render(resource))
            if effect != "Allow" or key in used:
                continue
            if key in KEPT:
                if (key, KEPT[key]) not in kept:
                    kept.append((key, KEPT[key]))
            elif key not in unused:
                unused.append(key)
                violations.append(f"{function}: {role['role']} grants {action} on {render(resource)}, "
                                  "which no recorded call used (remove it, or name why it stays in KEPT)")
    # A kept grant a run did use is fine (a path the suites reach only
    # sometimes); the report says so, so KEPT can be pruned.
    kept_and_used = [key for key in KEPT if key in used]

    report = render_report(functions, seen, kept, unused, violations, kept_and_used)
    if report_path:
        pathlib.Path(report_path).write_text(report)
    print(report)
    if violations:
        print(f"{len(violations)} IAM violation(s):", file=sys.stderr)
        for v in violations:
            print(f"  - {v}", file=sys.stderr)
        sys.exit(1)


def render_report(functions, seen, kept, unused, violations, kept_and_used):
    lines = ["# Calls recorded per function, against its role", ""]
    for function, role in functions.items():
        lines.append(f"## {function} ({role['role']})")
        lines.append("")
        lines.append("| operation | action | resource | calls | status |")
        lines.append("|---|---|---|---|---|")
        for (operation, action, resource), e in sorted(seen[function].items()):
            status = ",".join(str(s) for s in sorted(e["status"]))
            lines.append(f"| {operation} | {action} | `{resource}` | {e['count']} | {status} |")
        if not seen[function]:
            lines.append("| (none) | | | | |")
        lines.append("")
        for (f, action, resource), why in kept:
            if f == function:
                lines.append(f"- kept unused: {action} on `{resource}`: {why}")
        for (f, action, resource) in kept_and_used:
            if f == function:
                lines.append(f"- kept, and used in this run: {action} on `{resource}`")
        for (f, action, resource) in unused:
            if f == function:
                lines.append(f"- UNUSED: {action} on `{resource}`")
        for name in role["managed"]:
            lines.append(f"- managed {name}: {MANAGED[name][2]}")
        lines.append("")
    lines.append(f"{len(violations)} violation(s).")
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("load", help="create an administrator and the function roles on moto")
    p.add_argument("--endpoint", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--template", default=str(TEMPLATE))
    p = sub.add_parser("check", help="hold the recorded calls against the roles")
    p.add_argument("--calls", required=True)
    p.add_argument("--report")
    p.add_argument("--template", default=str(TEMPLATE))
    sub.add_parser("show", help="print each function's translated statements")
    args = parser.parse_args()
    if args.command == "load":
        load(args.endpoint, args.out, args.template)
    elif args.command == "check":
        check(args.calls, args.report, args.template)
    else:
        print(json.dumps(roles(translate()), indent=2))


if __name__ == "__main__":
    main()
