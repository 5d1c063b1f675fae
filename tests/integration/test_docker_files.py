"""docker/: the Dockerfile, compose.yaml, haproxy.cfg and gateway.yaml, checked statically (containers
cannot start on the CI machines; the same topology runs as plain processes in test_state_filters,
class TwoGateways): the compose file parses and names the cluster's services, everything it builds
from or mounts exists, HAProxy sends PROXY v2 to both gateways, Redis stays on the internal network,
and the gateways' configuration passes `portcullis -t`.

Owns: one temporary directory (a copy of gateway.yaml with loopback addresses).
"""

import os
import re
import subprocess
import tempfile
import unittest

import yaml  # python3-yaml (scripts/install-deps)

import harness as h

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DOCKER = os.path.join(ROOT, "docker")


def read(name):
    with open(os.path.join(DOCKER, name)) as f:
        return f.read()


class DockerFiles(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.compose = yaml.safe_load(read("compose.yaml"))

    def test_services_of_the_topology(self):
        services = self.compose["services"]
        self.assertEqual(set(services), {"haproxy", "gateway1", "gateway2", "redis", "postfix", "dovecot"})
        # one image, built once from the repository's root with docker/Dockerfile
        build = services["gateway1"]["build"]
        self.assertEqual(os.path.realpath(os.path.join(DOCKER, build["context"])), ROOT)
        self.assertTrue(os.path.isfile(os.path.join(ROOT, build["dockerfile"])))
        for name in ("gateway1", "gateway2", "postfix", "dovecot"):
            self.assertEqual(services[name]["image"], services["gateway1"]["image"], name)
        # only HAProxy is reachable from outside; Redis and the gateways are on the internal network
        self.assertTrue(self.compose["networks"]["private"]["internal"])
        self.assertEqual(services["redis"]["networks"], ["private"])
        self.assertNotIn("ports", services["redis"])
        for name in ("gateway1", "gateway2"):
            self.assertEqual(services[name]["networks"], ["private"], name)
            self.assertNotIn("ports", services[name], name)
        self.assertIn("25:25", services["haproxy"]["ports"])

    def test_every_mounted_file_exists(self):
        mounts = 0
        for name, svc in self.compose["services"].items():
            for vol in svc.get("volumes", []):
                src = vol.split(":", 1)[0]
                if src.startswith("."):
                    mounts += 1
                    self.assertTrue(os.path.isfile(os.path.join(DOCKER, src)), "%s mounts %s" % (name, src))
                else:
                    self.assertIn(src, self.compose["volumes"], "%s: named volume %s" % (name, src))
        self.assertGreaterEqual(mounts, 3)

    def test_dockerfile_uses_the_projects_install_script(self):
        text = read("Dockerfile")
        self.assertRegex(text, r"(?m)^FROM debian:12\b")
        self.assertIn("scripts/install-deps", text)
        self.assertTrue(os.access(os.path.join(ROOT, "scripts", "install-deps"), os.X_OK))
        self.assertIn("/etc/portcullis/portcullis.yaml", text)

    def test_haproxy_sends_proxy_v2_to_both_gateways(self):
        servers = re.findall(r"(?m)^\s*server\s+\S+\s+(\S+)\s+(.*)$", read("haproxy.cfg"))
        self.assertEqual(sorted(s[0] for s in servers), ["gateway1:25", "gateway2:25"])
        for _, opts in servers:
            self.assertIn("send-proxy-v2", opts)
        self.assertRegex(read("haproxy.cfg"), r"(?m)^\s*mode tcp\s*$")

    def test_gateway_config_passes_the_check(self):
        cfg = yaml.safe_load(read("gateway.yaml"))
        self.assertEqual(cfg["state"]["backend"], "redis")
        self.assertEqual(cfg["state"]["redis"]["address"], "redis:6379")
        lst = cfg["listeners"][0]
        self.assertEqual(lst["upstream"]["address"], "postfix:25")
        self.assertTrue(lst["proxy_protocol"]["trusted"])
        self.assertEqual({f["name"] for f in lst["filters"]}, {"greylist", "ratelimit"})
        # the compose host names are not known here: the same file with loopback addresses
        text = read("gateway.yaml").replace("redis:6379", "127.0.0.1:6379").replace("postfix:25", "127.0.0.1:25")
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "portcullis.yaml")
            with open(path, "w") as f:
                f.write(text)
            r = subprocess.run([h.portcullis_bin(), "-t", "-c", path], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("is valid", r.stdout + r.stderr)
        self.assertNotIn("warning", r.stdout + r.stderr)


if __name__ == "__main__":
    unittest.main()
