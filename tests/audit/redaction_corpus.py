"""A generated corpus of requests carrying secrets, for the redaction leak hunt.

Every case is a request body (JSON, or raw bytes) and the random cores of the secrets
it carries: none of them may appear anywhere in the trail once the gate has recorded
the request (``test_redaction_corpus``). The secrets are passwords made of random
pieces joined by special characters, written into command lines in each way a shell
accepts (bare, single-quoted, double-quoted, ``$'…'``, backslash-escaped), as argv
lists, in refused requests, in contexts and URLs, and tokens of every known form in
every carrier. Deterministic: a seed gives the same corpus.

The carriers are the forms docs/audit.md claims to redact; its known misses are marked
by ``known_miss``, so that the test says which ones still leak rather than hiding them.
"""

from __future__ import annotations

import base64
import json
import random
import re
import shlex
import string
import urllib.parse
import xml.sax.saxutils
from collections.abc import Callable, Iterator
from dataclasses import dataclass

LETTERS = string.ascii_letters + string.digits
# Characters a password may hold between its random pieces.
SAFE = "@%+-_.~:=^"
CLOSERS = ",]}"
EVERY = SAFE + ",]}/&;|<>()$`\\\"' {[*?#!"


@dataclass(frozen=True)
class Case:
    name: str
    body: bytes
    cores: tuple[str, ...]  # random text of the secrets: none may reach the trail
    known_miss: str = ""  # why docs/audit.md lists this form as a miss, or ""


def _single(value: str) -> str:
    return "'" + value.replace("'", "'\\''") + "'"


def _double(value: str) -> str:
    return '"' + re.sub(r'([\\"$`])', r"\\\1", value) + '"'


def _ansi_c(value: str) -> str:
    return "$'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _escaped(value: str) -> str:
    return re.sub(r"([^A-Za-z0-9_@%+=:,./-])", r"\\\1", value)


QUOTINGS: dict[str, Callable[[str], str]] = {
    "bare": lambda value: value,
    "single": _single,
    "double": _double,
    "ansi-c": _ansi_c,
    "escaped": _escaped,
}
# Command lines that pass a password ({P}); each is a form docs/audit.md claims.
COMMANDS = [
    "mysql -u root -p{P} appdb",
    "mysql -h db --password={P} -e 'select 1'",
    "mysql --password {P} appdb",
    "PGPASSWORD={P} psql -h db -U app",
    "sshpass -p {P} ssh deploy@10.0.0.5",
    "redis-cli -h cache -a {P} ping",
    "docker login -u bot -p {P} registry.example.com",
    "curl -u admin:{P} https://h.example.com/api",
    "htpasswd -b -c /tmp/h admin {P}",
    "export DB_PASSWORD={P}",
    "env DB_PASSWORD={P} ./run.sh",
    "kubectl create secret generic db --from-literal=password={P}",
    "openssl enc -aes256 -k {P} -in f -out g",
    "keytool -storepasswd -new {P} -keystore ks.jks",
    "aws configure set aws_secret_access_key {P}",
    "echo aws_secret_access_key={P} >> ~/.aws/credentials",
    "vault login -method=userpass username=u password={P}",
    "mysql -u root \\\n  --password={P} \\\n  appdb",
    "cd /app && MYSQL_PWD={P} mysql -u root",
    'sh -c "mysql -p{P} db"',
    "kubectl set env deploy/web DB_PASS={P}",
    "kubectl run x --image=busybox --env=API_KEY={P}",
    "curl -X POST --data-urlencode password={P} https://h/login",
    "curl -d client_secret={P} https://h/token",
    "app --db-password {P}",
    "app --api-key={P}",
    "psql --set=passwd={P}",
    "SSHPASS={P} sshpass -e ssh h",
    "REDISCLI_AUTH={P} redis-cli ping",
    "echo {P} | docker login -u bot --password-stdin; echo --token {P}",
    "sudo -u app env DB_PASSWORD={P} ./x",
    "timeout 5 mysql -p{P} db",
    "nohup redis-cli -a {P} monitor &",
    "keytool -genkey -storepass {P} -keypass {P} -alias a",
    "docker --config /tmp/d login -p {P} r",
    "podman login --password {P} quay.io",
    "git -c http.extraheader={P} clone https://h/r.git",
    "git config --global http.https://h/.extraheader {P}",
    "ldapsearch -x -D cn=admin -w {P} -b dc=x",
    "zip -r -P {P} out.zip dir",
    "gpg --batch --passphrase {P} -c notes.txt",
    "npm config set //registry.npmjs.org/:_authToken {P}",
    # Secrets that stand where a program expects them, with no option naming them.
    "smbclient //fs/share -U admin%{P} -c ls",
    "net rpc user info bob -U admin%{P} -S dc1",
    "redis-cli -h cache AUTH default {P}",
    "redis-cli CONFIG SET requirepass {P}",
    "rabbitmqctl add_user app {P}",
    "mc alias set minio https://s3.example.com minioadmin {P}",
    "vault login -no-print {P}",
    "7z a -p{P} backup.7z /data",
]
# Text that is not split into shell words: a here-document, a program's own source.
# ({V}: the password as is, when it holds none of the characters after the template.)
TEXTS = [
    ("python -c \"import pymysql; pymysql.connect(host='h', password='{V}')\"", "'\"\\$`"),
    ('curl -d \'{{"username":"a","password":"{V}"}}\' https://h/login', "'\"\\"),
    ("cat <<EOF > config.yaml\ndb:\n  password: {V}\nEOF", "\n"),
    ("cat > settings.xml <<'EOF'\n<server><password>{V}</password></server>\nEOF", "\n<"),
    ("cat > .env <<'EOF'\nDB_PASSWORD={V}\nAPI_TOKEN={V}\nEOF", "\n"),
    ("echo 'password: {V}' >> app.yaml", "'\n"),
    ('echo "DB_PASSWORD={V}" >> .env', '"\\$`\n'),
    ('psql "postgresql://app:{U}@db:5432/app"', ""),
    ("curl 'https://h/cb?code={U}&state=x'", ""),
    ("curl 'https://b.s3.amazonaws.com/k?X-Amz-Signature={U}&X-Amz-Date=1'", ""),
    # A secret read from standard input, and SQL that sets one.
    ("docker login -u bot --password-stdin <<< '{V}'", "'\n"),
    ('echo "{V}" | gh auth login --with-token', '"\\$`\n'),
    ("psql -c \"ALTER USER app WITH PASSWORD '{V}'\"", "'\"\\$`\n"),
    ("chpasswd <<'EOF'\nroot:{V}\nEOF", "\n"),
    ("docker login -u bot --password-stdin r.io <<EOF\n{V}\nEOF", "\n"),
]


class Corpus:
    def __init__(self, seed: int) -> None:
        self._random = random.Random(seed)
        self.cases: list[Case] = []

    def _core(self, length: int = 10) -> str:
        # Starts with Q and a digit run nowhere else in the request: found only if leaked.
        return "Q" + "".join(self._random.choice(LETTERS) for _ in range(length - 1))

    def password(self, specials: str) -> tuple[str, tuple[str, ...]]:
        cores = tuple(self._core() for _ in range(self._random.randint(1, 3)))
        joints = [self._random.choice(specials) for _ in cores[1:]]
        return cores[0] + "".join(j + c for j, c in zip(joints, cores[1:], strict=True)), cores

    def add(self, name: str, request: dict | bytes, cores: tuple[str, ...], miss: str = "") -> None:
        body = request if isinstance(request, bytes) else json.dumps(request).encode()
        self.cases.append(Case(name, body, cores, miss))

    def passwords(self, label: str, specials: str) -> None:
        # Each case gets a password of its own: a piece found in the trail names the
        # one case that leaked it.
        for index, command in enumerate(COMMANDS):
            for quoting, quote in QUOTINGS.items():
                for variant in ("line", "refused", "argv", "argv-refused"):
                    value, cores = self.password(specials)
                    if quoting == "bare" and re.search(r"[^A-Za-z0-9_@%+=:,./~^\]}-]", value):
                        continue  # a bare word cannot hold it
                    line = command.replace("{P}", quote(value))
                    request: dict[str, object] = {"action": "process.exec"}
                    miss = _line_miss(command, value)
                    if variant.startswith("argv"):
                        try:
                            request["argv"] = shlex.split(line) if "\n" not in line else None
                        except ValueError:  # shlex does not read $'...'
                            request["argv"] = None
                        # A quoting that splits the template into other words (a double
                        # quote closing the template's own: sh -c "mysql -p"a b" db")
                        # makes a list in which part of the value is no longer one.
                        words = len(shlex.split(command.replace("{P}", "pw")))
                        if request["argv"] is None or len(request["argv"]) != words:
                            continue
                    else:
                        request["commandLine"] = line
                    if variant.endswith("refused"):
                        # Kept as text, its command line split into words for redaction.
                        request["cwd"] = "rel"
                    self.add(f"{label}-c{index}-{quoting}-{variant}", request, cores, miss)
        for index, (text, excluded) in enumerate(TEXTS):
            for refused in (False, True):
                value, cores = self.password(specials)
                if any(character in value for character in excluded):
                    continue
                line = text.replace("{V}", value)
                line = line.replace("{U}", urllib.parse.quote(value, safe=""))
                # Free text in a here-document, but an XML element's, which runs to
                # its closing tag, a YAML line's, which runs to the line's end, and a
                # NAME=value line's, which does too unless white space, a backslash or
                # a backquote breaks it: then it is tagged up to the first of those or
                # of the characters that end a shell word.
                free = "</" not in text and not YAML_LINE.search(text)
                broken = re.search(r"[\s\\`]", value)
                heredoc = "<<" in text and "<<<" not in text and free and broken
                # ... unless it is fed to a program that reads a secret from its input.
                heredoc = heredoc and not re.search(r"chpasswd|-stdin", text.split("\n")[0])
                heredoc = heredoc and re.search(r"[\s<>&;'\"]", value)
                request = {"action": "process.exec", "commandLine": line}
                if refused:
                    request["bogus"] = True
                name = f"{label}-t{index}" + ("-refused" if refused else "")
                self.add(name, request, cores, "here-document text" if heredoc else "")

    def contexts(self, label: str, specials: str) -> None:
        for index, make in enumerate(CONTEXTS):
            for path in ("/app/data/x", "x"):  # accepted, and refused (relative)
                value, cores = self.password(specials)
                request = {"action": "file.read", "path": path, "context": make(value)}
                self.add(f"{label}-x{index}-{path}", request, cores)

    def urls(self, label: str, specials: str) -> None:
        for index, make in enumerate(URLS):
            for refused in (False, True):
                value, cores = self.password(specials)
                request: dict[str, object] = {"action": "network.request"}
                request["url"] = make(urllib.parse.quote(value, safe=""))
                if refused:
                    request["bogus"] = 1
                self.add(f"{label}-u{index}" + ("-refused" if refused else ""), request, cores)

    def tokens(self) -> None:
        for kind, make in TOKENS.items():
            for index, carry in enumerate(TOKEN_LINES):
                token, cores = make(self)
                line = carry(token)
                self.add(
                    f"token-{kind}-l{index}", {"action": "process.exec", "commandLine": line}, cores
                )
                token, cores = make(self)
                refused = {"action": "process.exec", "commandLine": carry(token), "cwd": "r"}
                self.add(f"token-{kind}-l{index}-refused", refused, cores)
                if "\n" not in line:
                    token, cores = make(self)
                    argv = shlex.split(carry(token))
                    self.add(
                        f"token-{kind}-l{index}-argv",
                        {"action": "process.exec", "argv": argv},
                        cores,
                    )
            token, cores = make(self)
            self.add(
                f"token-{kind}-path", {"action": "file.read", "path": f"/app/{token}.txt"}, cores
            )
            token, cores = make(self)
            request = {"action": "network.request", "url": f"https://api.x/v1?k={token}"}
            self.add(f"token-{kind}-url", request, cores)
            # Straddling the 2,048 bytes a refused body keeps.
            for pad in range(1990, 2050, 7):
                token, cores = make(self)
                head = '{"action":"file.read","path":"x","context":{"p":"' + "A" * (pad - 48) + " "
                self.add(f"token-{kind}-cut{pad}", (head + token + '"}}').encode(), cores)


def _line_miss(command: str, value: str) -> str:
    if command.startswith("sh -c") and re.search(r"\$[A-Za-z_]", value):
        return "a password holding $NAME is expanded by the shell"
    if command.startswith("vault login") and "=" in value:
        return "vault reads a word holding '=' as an auth method's KEY=VALUE"
    return ""


def _json(value: object) -> str:
    return json.dumps(value)


def _xml(value: str) -> str:
    return xml.sax.saxutils.escape(value)


CONTEXTS: list[Callable[[str], object]] = [
    lambda v: {"env": {"DB_PASSWORD": v}},
    lambda v: {"config": f"db:\n  host: x\n  password: {v}\n"},
    lambda v: {"body": _json({"user": "a", "password": v})},
    lambda v: {"headers": [{"name": "X-Api-Key", "value": v}]},
    lambda v: {"a": [{"b": {"dbPassword": v}}]},
    lambda v: {"cmd": f"mysql --password={shlex.quote(v)} db"},
    lambda v: {"payload": _json({"githubToken": v})},
    lambda v: {"payload": _json({"clientSecret": v})},
    lambda v: {"githubToken": v},
    lambda v: {"env": [{"name": "DB_PASSWORD", "value": v}]},
    lambda v: {"yaml": f"apiToken: {v}\n" if not re.search(r"[\s'\"#]", v) else "x"},
    lambda v: {"ini": f"[db]\npassword = {v}\n" if not re.search(r"[\s;'\"]", v) else "x"},
    lambda v: {"xml": f"<settings>\n  <server>\n    <password>{_xml(v)}</password>\n  </server>"},
    lambda v: {"xml": f'<cfg><ns:apiToken a="1">{_xml(v)}</ns:apiToken></cfg>'},
    lambda v: {"xml": f"<db><db_password><![CDATA[{v}]]></db_password></db>"},
]
# A here-document text whose secret is a YAML line's value ("  password: {V}").
YAML_LINE = re.compile(r"(?m)^[ \t]*[A-Za-z_]+: \{V\}$")
URLS: list[Callable[[str], str]] = [
    lambda u: f"https://bot:{u}@api.example.com/v1",
    lambda u: f"https://api.example.com/v1?password={u}&x=1",
    lambda u: f"https://api.example.com/cb?code={u}&state=1",
    lambda u: f"https://api.example.com/cb#access_token={u}&t=b",
    lambda u: f"https://s3.amazonaws.com/b/k?X-Amz-Signature={u}",
    lambda u: f"https://h/?client_secret={u}",
    lambda u: f"https://h/?api_key={u}",
    lambda u: f"https://h/x?token={u}#frag",
]


def _prefixed(prefix: str, length: int) -> Callable[[Corpus], tuple[str, tuple[str, ...]]]:
    def make(corpus: Corpus) -> tuple[str, tuple[str, ...]]:
        core = corpus._core(length)
        return prefix + core, (core,)

    return make


def _upper(prefix: str) -> Callable[[Corpus], tuple[str, tuple[str, ...]]]:
    def make(corpus: Corpus) -> tuple[str, tuple[str, ...]]:
        alphabet = string.ascii_uppercase + string.digits
        core = "".join(corpus._random.choice(alphabet) for _ in range(16))
        return prefix + core, (core,)

    return make


def _jwt(corpus: Corpus) -> tuple[str, tuple[str, ...]]:
    def part(value: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    payload = part({"sub": corpus._core(16)})
    signature = corpus._core(43)
    token = f"{part({'alg': 'HS256', 'kid': corpus._core(12)})}.{payload}.{signature}"
    return token, (payload[-14:], signature)


TOKENS: dict[str, Callable[[Corpus], tuple[str, tuple[str, ...]]]] = {
    "openai": _prefixed("sk-", 40),
    "anthropic": _prefixed("sk-ant-api03-", 60),
    "github": _prefixed("ghp_", 36),
    "aws": _upper("AKIA"),
    "slack": _prefixed("xoxb-1234567890-", 24),
    "jwt": _jwt,
    "gitlab": _prefixed("glpat-", 20),
    "npm": _prefixed("npm_", 36),
    "huggingface": _prefixed("hf_", 34),
    "vault": _prefixed("hvs.", 90),
    "google": _prefixed("AIza", 35),
    "stripe": _prefixed("sk_live_", 24),
}
TOKEN_LINES: list[Callable[[str], str]] = [
    lambda t: f"echo {t}",
    lambda t: f'curl -H "Authorization: Bearer {t}" https://api.x/v1',
    lambda t: f"export OPENAI_API_KEY={t}",
    lambda t: f"OPENAI_API_KEY='{t}' python app.py",
    lambda t: f"git clone https://x-access-token:{t}@github.com/o/r.git",
    lambda t: f"git clone https://{t}@github.com/o/r.git",
    lambda t: f"cat <<EOF > .env\nKEY={t}\nEOF",
    lambda t: f"aws configure set aws_access_key_id {t}",
    lambda t: f'curl -d \'{{"key":"{t}"}}\' https://x',
    lambda t: f'curl -H "X-Api-Key: {t}" https://x',
]


def corpus(seed: int = 2026_12_06) -> list[Case]:
    built = Corpus(seed)
    built.tokens()
    for label, specials in (("safe", SAFE), ("closers", CLOSERS), ("every", EVERY)):
        built.passwords(label, specials)
        built.contexts(label, specials)
        built.urls(label, specials)
    return built.cases


def leaked(cases: list[Case], trail: bytes) -> Iterator[tuple[Case, str]]:
    """Each case whose secrets show in ``trail``, with the piece found: any 8
    characters of a core (a secret tagged in part leaves the rest of it)."""
    for case in cases:
        for core in case.cores:
            pieces = {core[i : i + 8] for i in range(0, max(1, len(core) - 7))}
            found = next((p for p in pieces if p.encode() in trail), None)
            if found is not None:
                yield case, found
                break
