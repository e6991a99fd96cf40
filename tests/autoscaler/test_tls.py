"""mTLS: the service requires a client certificate signed by --client-ca-file; without the TLS flags the command
refuses to start (one line, exit 2) unless --insecure-grpc. Throwaway certificates made with the openssl CLI."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest

from ovirt_cloudprovider.autoscaler.server import grpc_settings
from ovirt_cloudprovider.simulators.engine import EngineSimulator
from tests.autoscaler.conftest import Scaler, config_for, start_autoscaler


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=30)


def _pki(d: Path) -> dict[str, Path]:
    """A CA, a server certificate for localhost and a client certificate, all signed by the CA."""
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(d / "ca.key"), "-out", str(d / "ca.pem"),
             "-days", "1", "-subj", "/CN=test-ca")
    for name, ext in (("server", "subjectAltName=DNS:localhost,IP:127.0.0.1"),
                      ("client", "extendedKeyUsage=clientAuth")):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(d / f"{name}.key"), "-out",
                 str(d / f"{name}.csr"), "-subj", f"/CN={name}")
        (d / f"{name}.ext").write_text(ext + "\n")
        _openssl("x509", "-req", "-in", str(d / f"{name}.csr"), "-CA", str(d / "ca.pem"), "-CAkey", str(d / "ca.key"),
                 "-CAcreateserial", "-out", str(d / f"{name}.pem"), "-days", "1", "-extfile", str(d / f"{name}.ext"))
    return {n: d / n for n in ("ca.pem", "server.pem", "server.key", "client.pem", "client.key")}


def test_client_certificate_required(tmp_path: Path, sim: EngineSimulator, scalers: Callable[..., Scaler]) -> None:
    pki = _pki(tmp_path)
    settings = grpc_settings("127.0.0.1:0", cert_file=str(pki["server.pem"]), key_file=str(pki["server.key"]),
                             client_ca_file=str(pki["ca.pem"]), insecure=False)
    ca = pki["ca.pem"].read_bytes()
    good = grpc.ssl_channel_credentials(root_certificates=ca, private_key=pki["client.key"].read_bytes(),
                                        certificate_chain=pki["client.pem"].read_bytes())
    s = scalers(config_for(sim), grpc_settings=settings, credentials=good)
    assert [g.id for g in s.call("NodeGroups").nodeGroups] == ["pool", "other"]
    anonymous = Scaler(s.server, f"localhost:{s.server.grpc_port}", grpc.ssl_channel_credentials(root_certificates=ca))
    with pytest.raises(grpc.RpcError) as refused:
        anonymous.stub.NodeGroups(anonymous.pb.NodeGroupsRequest(), timeout=5)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    anonymous.channel.close()
    plain = grpc.insecure_channel(f"127.0.0.1:{s.server.grpc_port}")
    with pytest.raises(grpc.RpcError):
        anonymous.stub.__class__(plain).NodeGroups(anonymous.pb.NodeGroupsRequest(), timeout=5)
    plain.close()


@pytest.mark.parametrize(("flags", "message"), [
    ([], "the gRPC service needs mTLS: --tls-cert-file, --tls-private-key-file, --client-ca-file missing"),
    (["--tls-cert-file", "/x.pem"], "--tls-private-key-file, --client-ca-file missing"),
    (["--insecure-grpc", "--tls-cert-file", "/x.pem"], "--insecure-grpc and --tls-cert-file exclude each other"),
    (["--insecure-grpc", "--grpc-bind-address", "nowhere"], "--grpc-bind-address: expected HOST:PORT"),
])
def test_refuses_to_start_without_tls(tmp_path: Path, sim: EngineSimulator, flags: list[str], message: str) -> None:
    conf = sim.write_config(str(tmp_path / "ovirt.conf"))
    proc = subprocess.run([sys.executable, "-m", "ovirt_cloudprovider", "autoscaler", "--config", conf, *flags],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and message in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize(("key", "message"), [
    (None, "[autoscaler] mark_key_file: missing"),
    (b"short\n", "[autoscaler] mark_key_file: {path} holds 5 bytes; a mark key needs at least 32"),
    ("gone", "[autoscaler] mark_key_file: cannot read {path}: No such file or directory"),
])
def test_refuses_to_start_without_a_good_mark_key(tmp_path: Path, sim: EngineSimulator, key: bytes | str | None,
                                                 message: str) -> None:
    """The mark key signs the ownership marks: without one (or with a short one) the autoscaler does not start, in
    one line naming the section and key (the key itself never shown)."""
    conf = sim.write_config(str(tmp_path / "ovirt.conf"))
    path = tmp_path / "mark-key"
    if isinstance(key, bytes):
        path.write_bytes(key)
    with open(conf, "a") as f:
        if key is not None:
            f.write(f"\n[autoscaler]\nmark_key_file = {path}\n")
        f.write("\n[nodegroup pool]\ntemplate = k8s-node\ncluster = east-a\nmax_size = 2\n")
    proc = subprocess.run([sys.executable, "-m", "ovirt_cloudprovider", "autoscaler", "--config", conf,
                           "--insecure-grpc", "--grpc-bind-address", "127.0.0.1:0",
                           "--metrics-bind-address", "127.0.0.1:0"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert message.format(path=path) in proc.stderr and proc.stderr.count("\n") == 1
    assert "short" not in proc.stderr


def test_refuses_a_config_without_node_groups(tmp_path: Path, sim: EngineSimulator) -> None:
    conf = sim.write_config(str(tmp_path / "ovirt.conf"))
    proc = subprocess.run([sys.executable, "-m", "ovirt_cloudprovider", "autoscaler", "--config", conf,
                           "--insecure-grpc", "--grpc-bind-address", "127.0.0.1:0",
                           "--metrics-bind-address", "127.0.0.1:0"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "no [nodegroup NAME] section" in proc.stderr and proc.stderr.count("\n") == 1


def test_the_command_serves_and_stops_on_sigterm(tmp_path: Path, sim: EngineSimulator) -> None:
    import signal

    from ovirt_cloudprovider.autoscaler.protocol import load
    proc, port = start_autoscaler(sim, str(tmp_path / "ovirt.conf"), max_size=2)
    try:
        pb, services = load()
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            groups = services.CloudProviderStub(channel).NodeGroups(pb.NodeGroupsRequest(), timeout=10)
        assert [g.id for g in groups.nodeGroups] == ["pool"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        proc.kill()
        proc.wait(timeout=10)


def test_without_the_autoscaler_extra_one_line(tmp_path: Path, sim: EngineSimulator) -> None:
    conf = sim.write_config(str(tmp_path / "ovirt.conf"))
    code = ("import sys; sys.modules['grpc'] = None; from ovirt_cloudprovider.cli import main; "
            f"sys.exit(main(['autoscaler', '--config', {conf!r}, '--insecure-grpc']))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "needs the 'autoscaler' extra" in proc.stderr and "grpc is not installed" in proc.stderr
