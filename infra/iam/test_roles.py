"""The role checks themselves: IAM's matching rules, resolution against a
stack's ARNs, the roles the SAM translation gives each function, and the
message a missing grant produces."""

import io
import json
import pathlib
import sys
import tempfile
import unittest
from contextlib import redirect_stderr, redirect_stdout

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import roles  # noqa: E402

STACK = {
    "kind": "stack",
    "account": "123456789012",
    "region": "us-east-1",
    "resources": {
        "Table": {"Ref": "p-fanout", "Arn": "arn:aws:dynamodb:us-east-1:123456789012:table/p-fanout"},
        "EventBus": {"Ref": "p-fanout", "Arn": "arn:aws:events:us-east-1:123456789012:event-bus/p-fanout"},
        "WebSocketApi": {"Ref": "local"},
    },
    "parameters": {"StageName": "local"},
}

INDEX_QUERY = {
    "kind": "call", "function": "connect", "operation": "Query", "action": "dynamodb:Query",
    "resource": "arn:aws:dynamodb:us-east-1:123456789012:table/p-fanout/index/GSI1", "status": 200,
}


class Matching(unittest.TestCase):
    def test_actions_ignore_case_and_resources_do_not(self):
        self.assertTrue(roles.matches("dynamodb:get*", "dynamodb:GetItem", False))
        self.assertTrue(roles.matches("sqs:Send?essage", "sqs:SendMessage", False))
        self.assertFalse(roles.matches("arn:aws:sqs:*:*:Q", "arn:aws:sqs:us-east-1:1:q", True))
        self.assertTrue(roles.matches("arn:aws:execute-api:r:a:api/s/POST/@connections/*",
                                      "arn:aws:execute-api:r:a:api/s/POST/@connections/a/b=", True))

    def test_a_table_grant_does_not_reach_its_index(self):
        table = {"Fn::GetAtt": ["Table", "Arn"]}
        index = {"Fn::Sub": "${Table.Arn}/index/GSI1"}
        statement = [{"Effect": "Allow", "Action": "dynamodb:Query", "Resource": table}]
        self.assertFalse(roles.allowed(INDEX_QUERY, statement, STACK))
        statement[0]["Resource"] = [table, index]
        self.assertTrue(roles.allowed(INDEX_QUERY, statement, STACK))

    def test_sub_resolves_pseudo_parameters_parameters_and_attributes(self):
        arn = roles.resolve({"Fn::Sub": "arn:aws:execute-api:${AWS::Region}:${AWS::AccountId}:"
                                        "${WebSocketApi}/${StageName}/POST/@connections/*"}, STACK)
        self.assertEqual(arn, "arn:aws:execute-api:us-east-1:123456789012:local/local/POST/@connections/*")

    def test_a_deny_wins(self):
        statements = [
            {"Effect": "Allow", "Action": "dynamodb:*", "Resource": "*"},
            {"Effect": "Deny", "Action": "dynamodb:Query", "Resource": "*"},
        ]
        self.assertFalse(roles.allowed(INDEX_QUERY, statements, STACK))


class TranslatedRoles(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.default = roles.roles(roles.translate())

    def actions_on(self, function, resource_text):
        return {a for e, a, r in roles.grants(self.default[function]["statements"])
                if roles.render(r) == resource_text}

    def test_connect_may_query_the_user_index(self):
        self.assertIn("dynamodb:Query", self.actions_on("connect", "${Table.Arn}/index/GSI1"))

    def test_the_index_is_only_read(self):
        for function in roles.FUNCTIONS.values():
            self.assertLessEqual(self.actions_on(function, "${Table.Arn}/index/GSI1"), {"dynamodb:Query"},
                                 f"{function} may write through the index ARN")

    def test_the_broadcaster_does_not_query(self):
        actions = {a for _, a, _ in roles.grants(self.default["broadcaster"]["statements"])}
        self.assertNotIn("dynamodb:Query", actions)

    def test_xray_write_access_only_with_active_tracing(self):
        for function, role in self.default.items():
            self.assertNotIn("AWSXrayWriteOnlyAccess", role["managed"], f"{function}, default TracingMode")
        active = roles.roles(roles.translate(parameters={"TracingMode": "Active"}))
        for function, role in active.items():
            self.assertIn("AWSXrayWriteOnlyAccess", role["managed"], f"{function}, TracingMode Active")


class Check(unittest.TestCase):
    def run_check(self, template_text, calls):
        with tempfile.TemporaryDirectory() as d:
            template = pathlib.Path(d) / "template.yaml"
            template.write_text(template_text)
            log = pathlib.Path(d) / "calls"
            log.mkdir()
            (log / "s.jsonl").write_text("\n".join(json.dumps(r) for r in [STACK, *calls]) + "\n")
            err, out = io.StringIO(), io.StringIO()
            with redirect_stderr(err), redirect_stdout(out):
                try:
                    roles.check(log, None, template)
                    code = 0
                except SystemExit as e:
                    code = e.code
            return code, err.getvalue()

    def test_a_missing_grant_names_the_function_the_call_and_the_grant(self):
        text = roles.TEMPLATE.read_text()
        without = text.replace(
            '            - Effect: Allow\n              Action: dynamodb:Query\n'
            '              Resource: !Sub "${Table.Arn}/index/GSI1"\n', "", 1)
        self.assertNotEqual(text, without, "the connect function's index grant is where the test expects it")
        code, err = self.run_check(without, [INDEX_QUERY])
        self.assertEqual(code, 1)
        self.assertIn("connect: Query on arn:aws:dynamodb:us-east-1:123456789012:table/p-fanout/index/GSI1 "
                      "needs dynamodb:Query on that resource, which ConnectFunctionRole does not grant", err)

    def test_an_unused_grant_is_reported(self):
        code, err = self.run_check(roles.TEMPLATE.read_text(), [INDEX_QUERY])
        self.assertEqual(code, 1)
        self.assertIn("connect: ConnectFunctionRole grants events:PutEvents on ${EventBus.Arn}, "
                      "which no recorded call used", err)
        self.assertNotIn("connect: Query on", err)


if __name__ == "__main__":
    unittest.main()
