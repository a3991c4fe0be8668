"""Secret redaction before an audit record is written (CONTRACT section 4).

Tokens and keys found anywhere in a record body are replaced by
``[REDACTED:<kind>:<first 8 hex of HMAC-SHA256(key, secret)>]``: the same secret always
gives the same tag, so an investigator can correlate records, yet the tag reveals
nothing without the key (and a low-entropy password cannot be brute-forced from it).

Redaction runs on every decision record, so it has a fast path: one RE2 scan of the
record's canonical JSON for anything a secret needs: the start of a token or a header,
or a word naming a secret with something assigned to it or ending an object key (not
"secrets" in a path), or an XML element so named (``<password>``), or a shell brace
list, whose words are read as bash expands them (``{sshpass,-p,pw}``). Only when that
screen hits are the body's strings looked at with the precise patterns, each pattern
only on a string holding one of its literals; a body
in which they find nothing is returned as it is, without being rebuilt. The screens and
the literals are deliberately supersets of the precise patterns; ``tests/audit`` checks
them, the screens against every form of assignment the patterns accept.
"""

from __future__ import annotations

import bisect
import functools
import hmac
import itertools
import json
import re
import shlex
import string
from collections.abc import Callable, Iterator, Sequence
from hashlib import sha256
from typing import Any

import re2

_QUALIFIED_KEYS = (
    r"(?:account|storage|encryption|signing|subscription|master|shared|auth|app(?:lication)?)"
    r"[_-]?key"
)
_SECRET_NAMES = (
    r"password|passwd|pwd|pass|secret|client[_-]?secret|token|access[_-]?token|refresh[_-]?token"
    r"|auth[_-]?token|id[_-]?token|api[_-]?key|apikey|secret[_-]?key|access[_-]?key"
    r"|aws[_-]?secret[_-]?access[_-]?key|private[_-]?key|session[_-]?token|credentials?"
    # The signature of a pre-signed URL (S3 X-Amz-Signature, GCS X-Goog-Signature, Azure
    # SAS sig) grants access until it expires, like a token.
    r"|signature|sig"
    # OAuth PKCE: the verifier redeems an authorization code, as the client secret does;
    # the device flow's device code is polled for the tokens (RFC 8628).
    r"|code[_-]?verifier|device[_-]?code"
    # Vault's AppRole SecretID, written as such (secret_id=, VAULT_SECRET_ID=); not AWS's
    # --secret-id or SecretId, which name a secret to read.
    r"|secret_id"
    # Keys that are secrets by what qualifies them (not key=, ssh_key=, cache_key=):
    # Azure's AccountKey and --account-key, ENCRYPTION_KEY, JWT_SIGNING_KEY, API
    # gateways' Ocp-Apim-Subscription-Key, Cloudflare's X-Auth-Key, Datadog's app key.
    rf"|{_QUALIFIED_KEYS}"
    # A bare "auth": npm's _auth= and Docker's "auth" (base64 of user:password),
    # CONSUL_HTTP_AUTH=user:pw, Firebase's ?auth=TOKEN (not authSource=, oauth=; nor
    # REDISCLI_AUTH=, a password by its own pattern).
    r"|(?<!rediscli_)auth"
    # A bearer token named as such: curl's --oauth2-bearer TOKEN, bearer=TOKEN.
    r"|(?:oauth2[_-]?)?bearer"
    # AWS Secrets Manager's value: --secret-string pw, "SecretString": "pw".
    r"|secret[_-]?(?:string|binary)"
    # Names that start with a secret's and go on: Rails' SECRET_KEY_BASE, Terraform's
    # TF_TOKEN_<host> (app.terraform.io as TF_TOKEN_app_terraform_io): bounded, a host
    # name's 253 characters with each '-' written '__', and possessive (what follows a
    # name is no word character), so that "TF_TOKEN_" repeated is not read to the end of
    # the word again from each repetition (quadratic: 17 s for 63 KB).
    r"|secret[_-]?key[_-]?base|tf_token_[A-Za-z0-9_]{1,506}+"
)
# Plural names of secrets ("secrets=", "api_keys:"); not "tokens", which in an LLM
# request counts them ("max_tokens=100").
_PLURAL_SECRET_NAMES = (
    r"(?:client[_-]?)?secrets|api[_-]?keys|(?:secret|access|private)[_-]?keys|credentials"
)
# Literals a string must hold for the password patterns, and for the secret patterns
# (every name of _SECRET_NAMES holds one of them), before the regex is tried.
_PASSWORD_LITERALS = ("pass", "pw")  # "pw": pwd, and a name ending in _PW
_SECRET_LITERALS = (
    *("pass", "pwd", "secret", "token", "key", "credential", "sig", "verifier", "device"),
    "auth",
)
# A value after "name=" or "name:": quoted (the secret is inside the quotes) or bare.
# Quotes may be JSON-escaped (\"), as in a request body kept as text in an
# invalidRequest record or JSON carried inside a string: then the secret runs to the
# closing \" (or, in a body cut short, to the end of the string). A plain quote that is
# never closed (malformed JSON, or a body cut at its 2048th byte) also runs to the end.
#
# On a command line a word may be made of several pieces (``''pw``, ``$'pw'``,
# ``"a"'b'``, ``pw"x"``): a quoted or bare value that does not end the word is not the
# whole secret, and the whole word is taken instead (possessive, so that a bare value
# cut short before a quote cannot pass for one that ends there).
# Inside double quotes a backslash escapes the next character, in JSON as in a shell
# ("a\"b" is a"b): possessive, so that a value never ends at an escaped quote.
_IN_DOUBLE = r"""(?:[^"\\]|\\[\s\S])*+"""
# A character of a bare value: not white space, a quote, or what ends a value in a
# query, on a command line or in a structure (& ; < > , ] }).
_BARE = r"""(?:[^\s&;,"'<>}\]\\]|\\[^"])"""
# ',', ']' and '}' inside a bare value are the value's (bash reads a,b and a}b as one
# word: --password=pw1,pw2); only a run of them ending it is not ("{password=x}",
# "password=x, user=y").
_INNER_CLOSERS = r"""[,}\]]++"""
_VALUE = (
    r"""(?:\\"((?:[^"\\]|\\[^"])*)(?:\\?"|$)"""
    # A closing single quote ends the value unless the word goes on: '\'' (the shell's
    # way of writing a quote inside single quotes) goes on, a JSON-escaped \" does not.
    rf"""|"({_IN_DOUBLE})"(?![^\s&;,<>}}\]\\)|])|'([^']*)'(?!(?!\\")[^\s&;,<>}}\])|])"""
    # A quote never closed (a body cut short, malformed JSON): to the end of the text.
    rf"""|"({_IN_DOUBLE}\\?)\Z|'([^']*)\Z"""
    rf"""|((?:{_BARE}|{_INNER_CLOSERS}(?={_BARE}))++)(?!["'])"""
    rf"""|((?:"{_IN_DOUBLE}"|'[^']*'|{_BARE}|{_INNER_CLOSERS}(?=["']|{_BARE}))+))"""
)
# A header value: up to a quote, a ';', or a JSON-escaped quote (\"); a ',' only where it
# ends the value (a key holding one, "a,b", is the key's).
_TOKEN_CHARACTER = r"""(?:[^\s"',;\\]|\\[^"])"""
_TOKEN = rf"""(?:{_TOKEN_CHARACTER}|,++(?={_TOKEN_CHARACTER}))+"""
# A name may end in the secret word after '_' or '-': DB_PASSWORD=, GITHUB_TOKEN=,
# MYSQL_PWD= (environment variables on a command line), db-password: ... Not "bypass=".
# Or at a camelCase hump, as JSON and YAML keys are written (githubToken:, dbPassword=),
# matched case-sensitively in these case-blind patterns.
# A lookbehind rather than a repeated prefix: Python's re backtracks, and a string of
# many "a-a-a-..." must not cost quadratic time on the event loop.
_NAME_START = r"(?:\b|(?<=[_-])|(?-i:(?<=[a-z0-9])(?=[A-Z])))"
# "password" and "passwd" also end a name glued to its prefix: PGPASSWORD= (libpq's),
# DBPASSWORD=. The short words do not ("bypass=", "compass=").
_GLUED = r"(?<=[A-Za-z0-9])"
# "pw" ends a name after '_' or '-' (DB_PW=, LDAP_BIND_PW=), never alone ("pw=" may be
# anything) nor glued to a word.
_PW = r"(?<=[A-Za-z0-9][_-])pw"
# Between the name and the '=' or ':', a closing quote, JSON-escaped or not.
_AFTER_NAME = r"""(?:\\?["'])?"""
_QUOTE = _AFTER_NAME
# The quote closing a quoted key ("Authorization": ...), JSON-escaped or not.
_KEY_QUOTE = r"""\\?["']"""
_FLAGS = re.ASCII
# A command-line option naming a secret whose value is the next word (``--password pw``,
# ``vault login --token t``): one or two dashes, words joined by '-' or '_', the last
# one a secret's name. ``--password-stdin`` and ``--password-file`` name no value.
# Java's keytool and jarsigner glue the word on: -storepass, -keypass, -srcstorepass,
# -destkeypass ... (-storepass:env NAME and -storepass:file PATH name no secret: the
# value must follow after white space).
_PASSWORD_WORDS = r"passphrase|password|passwd|pwd|pass|(?:src|dest)?(?:store|key)pass"
_OPTION_HEAD = r"--?(?:[A-Za-z0-9]+[-_])*"
# A name ending in -pw or _pw too (--db-pw pw, as --db-pw=pw and DB_PW=pw are read).
_PASSWORD_OPTION = rf"{_OPTION_HEAD}(?:{_PASSWORD_WORDS}|{_PW})"
_SECRET_OPTION = rf"{_OPTION_HEAD}(?:{_SECRET_NAMES})"


class SecretPattern:
    """A precise pattern, and literals (lower-cased) one of which every match contains;
    or, when ``named_program``, one of which the string must contain for the pattern to
    apply at all (the program whose option it reads, named anywhere in the string).

    Its regexes are compiled the first time a string needs them, not at import: Python's
    ``re`` takes 1 - 5 ms to compile each of the larger ones, about 100 ms for all of
    them, a fifth of the gate's imports, and most records never reach them (the screen
    before them is one RE2 scan). ``compile_all`` compiles every one, for the tests.
    """

    __slots__ = (
        "_flags",
        "_group_kinds",
        "_regex",
        "_source",
        "_values",
        "_values_source",
        "kind",
        "literals",
        "named_program",
        "to_line_end",
        "trim",
        "value_kinds",
    )

    def __init__(
        self,
        kind: str,
        regex: str,
        literals: tuple[str, ...],
        flags: int,
        named_program: bool = False,
        trim: bool = False,
        values: str | None = None,
        to_line_end: bool = False,
        value_kinds: tuple[tuple[str, str], ...] = (),
    ) -> None:
        self.kind = kind
        self.literals = literals
        self.named_program = named_program
        # Quotes, backslashes and white space at either end of a match are not the
        # secret's: the same credential gets the same tag however it was quoted or
        # escaped.
        self.trim = trim
        # The value runs to the end of its line, or is the last of the words it may be:
        # a match that ends where a tag placed before starts is not taken (the pattern,
        # run on the text up to the tag, reads the tag's start as the line's end, or the
        # word before it as the last; a record redacted twice would change).
        self.to_line_end = to_line_end
        self._source = regex
        # Secrets of several kinds read in one scan of a command, (kind, regex) each:
        # run as separate patterns, the first one's tags would cut the command apart, and
        # the second would not see the program's name before its option (curl -E c:pw -b
        # sid=v). ``values`` is then their alternation.
        self.value_kinds = value_kinds
        if value_kinds:
            values = "|".join(f"(?:{source})" for _, source in value_kinds)
        self._values_source = values
        self._group_kinds: dict[int, str] | None = None
        self._flags = flags
        self._regex: re.Pattern[str] | None = None
        self._values: re.Pattern[str] | None = None

    @property
    def regex(self) -> re.Pattern[str]:
        regex = self._regex
        if regex is None:
            regex = self._regex = re.compile(self._source, self._flags)
        return regex

    @property
    def values(self) -> re.Pattern[str] | None:
        """For a program whose arguments may carry several secrets in one command
        (kubectl set env A=1 B=2): ``regex`` then matches the command, from the
        program's name to the end of the command, and the secrets are the last group of
        each match of ``values`` in it after ``regex``'s group 1 (a regex cannot go on
        matching from where its last match ended, as each value would need)."""
        if self._values_source is None:
            return None
        values = self._values
        if values is None:
            values = self._values = re.compile(self._values_source, self._flags)
        return values

    @property
    def group_kinds(self) -> dict[int, str]:
        """The kind of a secret by the group of ``values`` holding it (``value_kinds``)."""
        group_kinds = self._group_kinds
        if group_kinds is None:
            group_kinds = self._group_kinds = {}
            groups = 0
            for kind, source in self.value_kinds:
                count = re.compile(source, self._flags).groups
                group_kinds.update((groups + group, kind) for group in range(1, count + 1))
                groups += count
        return group_kinds

    @property
    def has_values(self) -> bool:
        return self._values_source is not None


def _pattern(
    kind: str,
    regex: str,
    literals: tuple[str, ...],
    ignore_case: bool = False,
    named_program: bool = False,
    trim: bool = False,
    values: str | None = None,
    to_line_end: bool = False,
    value_kinds: tuple[tuple[str, str], ...] = (),
) -> SecretPattern:
    flags = _FLAGS | (re.IGNORECASE if ignore_case else 0)
    return SecretPattern(
        kind, regex, literals, flags, named_program, trim, values, to_line_end, value_kinds
    )


# Options that carry a secret only for one program (elsewhere ``-p`` is a port, ``-a``
# "all"): the program's name as a word (at the start, after white space, a quote, '(',
# or the '/' of a path), then its arguments up to the option, not crossing a command
# separator (``redis-cli ping; ls -a dir`` keeps ``dir``).
_PROGRAM_START = r"""(?:^|(?<=[\s/"'`(]))"""
# White space between words, or a line continuation (a backslash and a newline).
_BLANK = r"(?:[ \t]|\\\n)"


def _same_command(start: str) -> str:
    """A program's arguments up to an option (lazily), not crossing a command separator
    nor another ``start`` of the same program: from there the pattern matches on its own,
    and scanning on from every start would take time quadratic in the length of a command
    that repeats the name (``redis-cli redis-cli ...``)."""
    return rf"(?:(?!{start})(?:[^\n;&|]|\\\n))*?"


# A program's name may be quoted ('sshpass' -p pw): the closing quote after it.
_NAME_END = r"""["']?"""
# A program's argument: quoted, or up to white space or a quote (so a ',' or '&' in an
# unquoted password does not end it early).
# Several pieces of one word (``''pw``, ``$'pw'``) are taken whole, as in ``_VALUE``.
_ARGUMENT = (
    r"""\\"((?:[^"\\]|\\[^"])*)(?:\\?"|$)"""
    rf"""|"({_IN_DOUBLE})"(?![^\s;&|<>()])|'([^']*)'(?![^\s;&|<>()])"""
    rf"""|"({_IN_DOUBLE}\\?)\Z|'([^']*)\Z"""
    r"""|((?:[^\s"'\\]|\\[^"])++)(?!["'])"""
    rf"""|((?:"{_IN_DOUBLE}"|'[^']*'|[^\s"'\\]|\\[^"])+)"""
)
# Where a URL's user information starts: "://" after a scheme's character. The scheme
# is not matched from its first letter: tried from every word boundary of a long run
# such as "a.a.a...a://" that took time quadratic in its length (seconds for 60 KB on
# the record path); one character of it is enough to tell a URL.
_URL_AUTHORITY = r"(?<=[A-Za-z0-9+.-])://"
# A URL query or form parameter's value.
_PARAMETER = r"""(?:[^\s&#"'<>\\]|\\[^"])+"""
# An Authorization header's value is "<scheme> <credentials>" (RFC 9110 section 11.4), and
# everything after the scheme is the secret, whatever the scheme (Bearer, Bot, SSWS,
# ApiKey, NTLM, AWS, DPoP ...) and however the credentials are written: a token68,
# parameters with quoted values (Digest's response="...", Rails' token="..."), a quoted
# token. The scheme is an RFC 9110 token starting with a letter (not a quote, which
# could close the header's own quotes), followed by white space; it is kept, possessively:
# "Bot " before a tag, redacted again, is not then taken for the credential.
_AUTH_NAME = r"(?:proxy-)?authori[sz]ation"
_AUTH_SCHEME = r"(?:[A-Za-z][!#$%&*+.^_`|~0-9A-Za-z-]{0,63}[ \t]+)?+"
# Where the header's value is known to end, it is taken to that end: the quote that
# opened it (before the name, as in curl -H 'Authorization: ...', or after the ':'),
# the end of the line for a header that starts its line or string (an argv item
# "Authorization: ..."), or the end of the text when that quote is missing (a body cut
# short). Inside double quotes a backslash escapes the next character (shell, JSON);
# inside JSON-escaped quotes (\"...\"), the next \" ends it. A JSON-escaped \n or \r
# ends a header line too.
_AUTH_IN_DOUBLE = r"""((?:[^"\\\r\n]|\\[^rn\r\n])+)"""
_AUTH_IN_ESCAPED = r"""((?:[^"\\\r\n]|\\[^"rn\r\n])+)"""
_AUTH_IN_SINGLE = r"""([^'\r\n]+)"""
_AUTH_TO_LINE_END = r"""([^\r\n]+)"""
# Elsewhere (free text, a header after white space), the credentials as RFC 9110 writes
# them: items separated by commas, each made of bare text and quoted pieces
# (token="...", "tok"); a quoted piece ends where a word can end, or runs to the end
# of the text when its closing quote is missing.
_AUTH_PIECE = (
    r"""(?:"(?:[^"\\\r\n]|\\[^\r\n])*(?:"(?=[\s,;'\\)\]}]|$)|$)"""
    r"""|'[^'\r\n]*(?:'(?=[\s,;"\\)\]}]|$)|$)"""
    r"""|\\"(?:[^"\\]|\\[^"])*(?:\\"|$)"""
    r"""|(?:[^\s"',;\\]|\\[^"])+)"""
)
# The name, its ':' or '=', the scheme; no quote opening the value.
_AUTH_HEAD = rf"{_AUTH_NAME}[ \t]*[:=][ \t]*(?![\\\"'])(?=\S){_AUTH_SCHEME}"
_AUTH_CREDENTIALS = rf"({_AUTH_PIECE}++(?:[ \t]*,[ \t]*{_AUTH_PIECE}++)*+)"
# The name of an assignment at the start of a quoted word: an option or a variable
# ("--db-password", "PGPASSWORD"; not "bypass").
_QUOTED_PASSWORD = (
    r"(?:-{0,2}(?:[A-Za-z0-9]+[-_])*(?:passphrase|password|passwd|pwd|pass)"
    r"|[A-Za-z0-9_-]*(?:password|passwd)"
    r"|-{0,2}(?:[A-Za-z0-9]+[-_])+pw)"
)
_QUOTED_SECRET = rf"-{{0,2}}(?:[A-Za-z0-9]+[-_])*(?:{_SECRET_NAMES})"
_QUOTED_SIGN = r"(?:=|[ \t]*:[ \t]*)"
# htpasswd's options (-C takes a number) and its positional arguments.
# Atomic: "-C 10" is never re-read as an option "-C" and a positional "10" (a record
# redacted again would then lose its user name).
# The names of a name/value pair whose value is a secret (see ``pair_kind``).
_PAIR_NAMES = (
    rf"(?:{_SECRET_NAMES}|{_PLURAL_SECRET_NAMES}|passwords|passphrases?|authori[sz]ation|cookie)"
)
_HTPASSWD_OPTION = rf"{_BLANK}+(?>-[A-Za-z]*C{_BLANK}*[0-9]+|-[A-Za-z]+)"
_HTPASSWD_WORD = rf"""{_BLANK}+(?!-)(?:"[^"]*"|'[^']*'|[^\s"']+)"""

# Where the arguments of a program that reads a password from its own option start.
_REDIS_CLI = rf"{_PROGRAM_START}(?:redis|valkey|keydb)-cli{_NAME_END}(?={_BLANK})"
# (The Azure CLI's "az login -p pw" reads the same way: a service principal's secret.)
_CONTAINER_TOOL = rf"{_PROGRAM_START}(?:docker|podman|nerdctl|buildah|skopeo|az){_NAME_END}"
# A character of its global options that starts no other name of such a tool (from there
# the pattern matches on its own; scanning across it made "docker -a docker -a ..." slow).
_CONTAINER_OPTION_CHARACTER = rf"(?!{_CONTAINER_TOOL}(?={_BLANK}))\S"
_CONTAINER_LOGIN = (
    rf"{_CONTAINER_TOOL}(?:{_BLANK}+-{_CONTAINER_OPTION_CHARACTER}+"
    rf"(?:{_BLANK}+(?!-){_CONTAINER_OPTION_CHARACTER}+)?)*?{_BLANK}+login(?={_BLANK})"
)
# Programs whose subcommand takes a password after -p, as docker login does (elsewhere -p
# is a port, a parameter or a path: oc process -p, poetry add -P): helm registry login,
# oc login, crane auth login, oras login, regctl registry login, cf login, twine upload
# (register), poetry publish.
_SUBCOMMAND_PASSWORD_OPTIONS: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(("helm", "oc", "crane", "oras", "regctl", "cf"), ("login",)),
    "twine": ("upload", "register"),
    "poetry": ("publish",),
}


def _subcommand_password_patterns() -> list[SecretPattern]:
    """A pattern per set of subcommands of ``_SUBCOMMAND_PASSWORD_OPTIONS``: the program,
    its subcommand in the same command (words may stand between: helm registry login),
    then -p pw (-ppw, -p=pw) after it."""
    by_subcommands: dict[tuple[str, ...], list[str]] = {}
    for program, subcommands in _SUBCOMMAND_PASSWORD_OPTIONS.items():
        by_subcommands.setdefault(subcommands, []).append(program)
    patterns = []
    for subcommands, programs in by_subcommands.items():
        start = rf"{_PROGRAM_START}(?:{'|'.join(programs)}){_NAME_END}(?={_BLANK})"
        command = rf"{start}{_same_command(start)}{_BLANK}(?:{'|'.join(subcommands)})(?={_BLANK})"
        patterns.append(
            _pattern(
                "password",
                # Possessive: in "-p=" before a tag, the '=' is not the value.
                rf"{command}{_same_command(command)}{_BLANK}-p(?:{_BLANK}+|=)?+(?:{_ARGUMENT})",
                subcommands,
            )
        )
    return patterns


_KEYTOOL = rf"{_PROGRAM_START}keytool{_NAME_END}(?={_BLANK})"
_OPENSSL = rf"{_PROGRAM_START}openssl{_NAME_END}(?={_BLANK})"
# Programs whose own short option takes a password as the next word, where elsewhere the
# letter means something else: the OpenLDAP clients' -w (ldappasswd's -a and -s: the old
# and new password), sqlcmd's and bcp's -P, the MongoDB tools' -p, zip's -P (its
# encryption password) and unzip's, ssh-keygen's -N and -P (new and old passphrase).
# Not the legacy shell's "mongo": as often a container's, an image's or a host's name.
# An option after the option is no password: a lone -p prompts for one.
_OWN_PASSWORD_OPTIONS: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(
        ("ldapsearch", "ldapadd", "ldapmodify", "ldapdelete", "ldapwhoami", "ldapcompare"),
        ("-w",),
    ),
    **dict.fromkeys(("ldapmodrdn", "ldapexop", "ldapurl"), ("-w",)),
    "ldappasswd": ("-w", "-a", "-s"),
    **dict.fromkeys(("sqlcmd", "bcp"), ("-P",)),
    **dict.fromkeys(
        ("mongosh", "mongodump", "mongorestore", "mongoexport", "mongoimport"), ("-p",)
    ),
    **dict.fromkeys(("mongostat", "mongotop", "mongofiles"), ("-p",)),
    **dict.fromkeys(("zip", "unzip"), ("-P",)),
    # Cassandra's shell: cqlsh -u USER -p PASSWORD.
    "cqlsh": ("-p",),
    # mysqladmin's command "password NEW" sets the account's password.
    "mysqladmin": ("password",),
    "ssh-keygen": ("-N", "-P"),
}


def _program_command(programs: Sequence[str], start: str | None = None) -> str:
    """One of ``programs`` run (or ``start``, a pattern naming it), as group 1, then its
    arguments to the end of its command (quoted text whole), for a pattern that reads
    its secrets with ``values``."""
    if start is None:
        names = "|".join(map(re.escape, programs))
        start = rf"{_PROGRAM_START}(?:{names}){_NAME_END}(?={_BLANK})"
    # A redirection's '&' or '|' (2>&1, &>f, >|f) does not end the command.
    return rf"""({start})(?:"[^"]*"|'[^']*'|\\[\s\S]|[<>]&|&>|>\||(?!{start})[^\n;&|])*"""


def _own_option_patterns() -> list[SecretPattern]:
    """A pattern per set of options, for the programs of ``_OWN_PASSWORD_OPTIONS`` that
    share it: each such option's next word, among the program's arguments."""
    by_options: dict[tuple[str, ...], list[str]] = {}
    for program, options in _OWN_PASSWORD_OPTIONS.items():
        by_options.setdefault(options, []).append(program)
    patterns = []
    for options, programs in by_options.items():
        option = "|".join(map(re.escape, options))
        literals = tuple(sorted({program[:4] for program in programs}))
        patterns.append(
            _pattern(
                "password",
                _program_command(programs),
                literals,
                # The option, then its value as the next word or glued on (-Ppw).
                values=rf"{_BLANK}(?:{option})(?:{_BLANK}++(?!-)|(?=\S))(?:{_ARGUMENT})",
            )
        )
    return patterns


# A word skipped on the way to a positional secret: quoted pieces whole, possessive.
_WORD = r"""(?:"[^"\\]*(?:\\.[^"\\]*)*"|'[^']*'|[^\s"'\\;&|<>()]|\\[^\n])++"""
# A redirection and its word (2>&1, > /dev/null, <in): no argument of the program's.
_REDIRECTION = rf"[0-9]*+(?:[<>]|&>)[<>&|]*+{_BLANK}*+{_WORD}"
_NOT_REDIRECTION = r"(?![0-9]*[<>]|&>)"
# The positional arguments before a secret: the next word, not an option nor a
# redirection (skipped where a program's options are).
_NEXT = rf"{_BLANK}++(?!-){_NOT_REDIRECTION}"
# Samba's clients take a password after the user and a '%' (-U user%pw, --user=user%pw,
# -Uuser%pw; a domain may come first, 'DOM\\user%pw'), and smbclient a service's password
# as the word after the service (smbclient //host/share pw).
_SAMBA_CLIENTS: tuple[str, ...] = (
    *("smbclient", "rpcclient", "smbcacls", "smbcquotas", "smbget", "smbtree", "net"),
    "samba-tool",
)
_SAMBA_USER = (
    rf"{_BLANK}(?:-U|--user(?:name)?)(?:{_BLANK}++|=)?+"
    rf'''(?:'[^'%]*%([^']*)'|"(?:[^"\\%]|\\.)*+%({_IN_DOUBLE})"'''
    rf"""|(?:[^\s"'\\%;&|]|\\[^%])*+%(?:{_ARGUMENT}))"""
)
_SMBCLIENT_SERVICE = rf"{_BLANK}//[^\s;&|]+{_NEXT}(?:{_ARGUMENT})"
# redis-cli's commands that carry a password: AUTH [user] pw (HELLO 3 AUTH user pw too),
# CONFIG SET requirepass / masterauth pw, and ACL SETUSER's '>pw' rules. Of two words
# after AUTH, the second.
_REDIS_COMMAND_SECRET = (
    rf"{_BLANK}(?i:auth){_BLANK}++{_NOT_REDIRECTION}(?:{_WORD}{_BLANK}++{_NOT_REDIRECTION})?"
    rf"(?:{_ARGUMENT})"
    rf"|{_BLANK}(?i:config){_BLANK}++(?i:set){_BLANK}++(?i:requirepass|masterauth){_BLANK}++"
    rf"(?:{_ARGUMENT})"
    # ACL SETUSER's rule >pw (adds a password), quoted or escaped: unquoted, the shell
    # reads '>' as a redirection.
    rf"""|{_BLANK}(?:'>([^']+)'|">({_IN_DOUBLE})"|\\>((?:[^\s"'\\;&|<>()]|\\.)+))"""
)
# RabbitMQ's rabbitmqctl add_user USER PW (change_password, authenticate_user), its
# options anywhere before the password.
_RABBITMQ_OPTIONS = rf"(?:{_BLANK}++(?:-[^\s;&|]*|{_REDIRECTION}))*+"
_RABBITMQ_SECRET = (
    rf"{_BLANK}(?:add_user|change_password|authenticate_user){_RABBITMQ_OPTIONS}"
    rf"{_NEXT}{_WORD}{_RABBITMQ_OPTIONS}{_NEXT}(?:{_ARGUMENT})"
)
# Cloud Foundry's scripted login: cf auth USERNAME PASSWORD (CLIENT_ID CLIENT_SECRET with
# --client-credentials; --origin takes a value), auth the word after cf and its global
# options (cf -v auth, --help: none takes a value; a few, bounded as the screen's trigger
# is). The values are read only from a word auth's end, so a run of options is read once
# (not from each '-').
_CF = rf"{_PROGRAM_START}cf{_NAME_END}(?={_BLANK})"
_CF_AUTH_COMMAND = (
    rf"({_CF}(?:{_BLANK}++-[A-Za-z-]{{0,32}}+){{0,8}}+{_BLANK}++auth(?={_BLANK}))"
    rf"""(?:"[^"]*"|'[^']*'|\\[\s\S]|[<>]&|&>|>\||(?!{_CF})[^\n;&|])*"""
)
_CF_AUTH_OPTIONS = rf"(?:{_BLANK}++(?:--origin{_BLANK}++{_WORD}|-[^\s;&|]*|{_REDIRECTION}))*+"
_CF_AUTH_SECRET = (
    rf"(?<=[ \t\n]auth){_CF_AUTH_OPTIONS}{_NEXT}{_WORD}{_CF_AUTH_OPTIONS}{_NEXT}(?:{_ARGUMENT})"
)
# MinIO's client: mc alias set NAME URL ACCESS-KEY SECRET-KEY (mc config host add, the
# older spelling), flags among them (--api takes a value, --path and --lookup too).
_MC_OPTIONS = (
    rf"(?:{_BLANK}++(?:(?:--?(?:api|path|lookup)(?:=|{_BLANK}++)(?!-)|-){_WORD}|{_REDIRECTION}))*+"
)
_MC_SECRET = (
    rf"{_BLANK}(?:alias{_BLANK}++set|config{_BLANK}++host{_BLANK}++add)"
    rf"(?:{_MC_OPTIONS}{_NEXT}{_WORD}){{3}}{_MC_OPTIONS}{_NEXT}(?:{_ARGUMENT})"
)
# vault login TOKEN (and OpenBao's bao): the first word after login's flags that is no
# flag and assigns nothing (a KEY=VALUE is an auth method's: its value is a secret when
# the key names one, by the assignment patterns). A flag's value may be the next word:
# login's flags that take one (any other, "-no-print", takes none).
_VAULT_VALUE_FLAGS = (
    "method|path|address|namespace|ns|field|format|ca-cert|ca-path|client-cert|client-key"
    "|tls-server-name|wrap-ttl|mfa|header|policy-override|agent-address|log-level"
)
_VAULT_TOKEN = (
    rf"{_BLANK}login(?:{_BLANK}++--?(?:(?:{_VAULT_VALUE_FLAGS}){_BLANK}++(?!-){_WORD}"
    rf"|[^\s;&|]+)|{_BLANK}++{_REDIRECTION})*+{_NEXT}(?![^\s=;&|]*=)(?:{_ARGUMENT})"
)
# rclone config create NAME TYPE [KEY VALUE]... (update NAME ..., password NAME ...):
# the VALUE of each pair whose KEY names a secret (or of a KEY=VALUE word). KEY is a
# backend option: pass, password2, secret_access_key, client_secret, token, b2's and
# Azure's key, sas_url, service_account_credentials ... (not access_key_id, token_url).
_RCLONE_SECRET_KEYS = (
    r"(?:[A-Za-z0-9]+_)*(?:pass|passwd|password2?|secret|token|key|credentials)"
    r"|sas_url|sse_customer_key_base64"
)
_RCLONE_SECRET_KEY = re.compile(_RCLONE_SECRET_KEYS, _FLAGS | re.IGNORECASE)
_RCLONE_VALUE_FLAGS = "config|state|result|log-file|log-level|cache-dir|password-command"
_RCLONE_OPTIONS = (
    rf"(?:{_BLANK}++(?:--?(?:{_RCLONE_VALUE_FLAGS})(?:=|{_BLANK}++)(?!-){_WORD}"
    rf"|-[^\s;&|]*|{_REDIRECTION}))*+"
)
_RCLONE_CONFIG = (
    rf"{_BLANK}config{_RCLONE_OPTIONS}{_NEXT}"
    rf"(?:create{_RCLONE_OPTIONS}{_NEXT}{_WORD}{_RCLONE_OPTIONS}{_NEXT}{_WORD}"
    rf"|(?:update|password){_RCLONE_OPTIONS}{_NEXT}{_WORD})"
)
# One pair, or one KEY=VALUE word, from where the last one ended: a pair or word that
# holds no secret matches with an empty last group, so that the pairs stay in step.
_RCLONE_PAIR = (
    rf"{_RCLONE_OPTIONS}{_NEXT}(?:(?i:{_RCLONE_SECRET_KEYS}){_RCLONE_OPTIONS}{_NEXT}"
    rf"(?:{_ARGUMENT})|(?i:{_RCLONE_SECRET_KEYS})=(?:{_ARGUMENT})|(?=[^\s=]*=){_WORD}()"
    rf"|{_WORD}{_RCLONE_OPTIONS}{_NEXT}{_WORD}())"
)
# curl's client certificate and its passphrase: --cert FILE:PASSPHRASE (-E, --proxy-cert).
_CURL_CERT_PASSWORD = (
    rf"{_BLANK}(?:-E|--(?:proxy-)?cert)(?:=|{_BLANK}++)"
    r"""(?:'[^':]*:([^']+)'|"[^":]*:([^"]+)"|[^\s'":]*:((?:[^\s"'\\]|\\.)+))"""
)
# A proxy given without a scheme, USER:PASSWORD@HOST[:PORT] (with one, the password is
# url-credentials'): the password, from the first ':' to the last '@' of the word; the
# user (which may hold an '@', bob@corp) and host kept.
_PROXY_PASSWORD = (
    r"""(?:'[^\s:'/]*:(?!//)([^']+)@[^'@]*'|"[^\s:"/]*:(?!//)([^"]+)@[^"@]*"|"""
    r"""[^\s:'"/]*:(?!//)((?:[^\s'"\\]|\\.)+)@[^\s@'"]*)"""
)
# curl's proxy as -x PROXY (-xPROXY); --proxy is read for any program (pip's too).
_CURL_PROXY_PASSWORD = rf"{_BLANK}-x(?:{_BLANK}++|(?=[^\s-])){_PROXY_PASSWORD}"
# curl's short options that take no value, which may stand before -b in one cluster
# (-sb, -sSb, -kLb; at most 16, as the screen's trigger): a letter that takes one (-o,
# -H ...) takes the rest of its cluster.
_CURL_FLAGS = "[0-9#aBfgGIijJklLMnNOpqRsSvVZ]"
# curl's cookies, -b/--cookie 'NAME=VALUE; NAME2=VALUE2' (-bNAME=VALUE, -sb NAME=VALUE,
# --cookie=...): the whole argument, as a Cookie: header's value. One without '=' names
# a file to read them from, and is kept.
_CURL_COOKIE = (
    rf"{_BLANK}(?:-{_CURL_FLAGS}{{0,16}}+b(?:{_BLANK}++|(?=[^\s-]))|--cookie(?:=|{_BLANK}++))"
    rf"(?=[^\s=]*=)(?:{_ARGUMENT})"
)
# skopeo's, buildah's and podman's registry credentials, --creds USER:PASSWORD
# (--src-creds, --dest-creds; --creds=...): the part after the first colon, as curl's -u.
_CREDS = (
    rf"{_BLANK}--(?:src-|dest-)?creds(?:=|{_BLANK}++)"
    rf"""(?:'[^\s:'"/]*:([^']+)'|"[^\s:'"/]*:([^"]+)"|[^\s:'"/]*:(?:{_ARGUMENT}))"""
)
# The value a secret store keeps: aws ssm put-parameter --value V (a SecureString's, or
# any), az keyvault secret set --value V.
_STORE_VALUE = rf"{_BLANK}--value(?:=|{_BLANK}++)(?:{_ARGUMENT})"
# poetry config pypi-token.NAME TOKEN, and http-basic.NAME USER PASSWORD (config's flags,
# --local ..., anywhere among them).
_POETRY_OPTIONS = rf"(?:{_BLANK}++(?:-[^\s;&|]*|{_REDIRECTION}))*+"
_POETRY_TOKEN = (
    rf"{_BLANK}config{_POETRY_OPTIONS}{_NEXT}pypi-token\.{_WORD}{_POETRY_OPTIONS}{_NEXT}"
    rf"(?:{_ARGUMENT})"
)
_POETRY_PASSWORD = (
    rf"{_BLANK}config{_POETRY_OPTIONS}{_NEXT}http-basic\.{_WORD}{_POETRY_OPTIONS}{_NEXT}{_WORD}"
    rf"{_POETRY_OPTIONS}{_NEXT}(?:{_ARGUMENT})"
)
# cargo login TOKEN: the first word after login's flags (cargo's global ones before it,
# +toolchain too), those that take a value skipping it (--registry NAME).
_CARGO_VALUE_FLAGS = "registry|config|color|Z|C"
_CARGO_WORD_END = r"""(?![^\s;&|<>()"'`\\])"""
# An option's value is never the word cargo: each naming of cargo then reads its options
# only up to the next (linear; "cargo --registry " repeated took each to the end).
_CARGO_OPTIONS = (
    rf"(?:{_BLANK}++(?:--?(?:{_CARGO_VALUE_FLAGS}){_BLANK}++(?!-|cargo{_CARGO_WORD_END}){_WORD}"
    rf"|[+-][^\s;&|]*"
    rf"|{_REDIRECTION}))*+"
)
_CARGO_TOKEN = (
    rf"{_PROGRAM_START}cargo{_NAME_END}{_CARGO_OPTIONS}{_BLANK}++login{_CARGO_OPTIONS}{_NEXT}"
    rf"(?:{_ARGUMENT})"
)
# GitHub's CLI: gh secret set NAME --body VALUE (-b VALUE, -bVALUE, --body=VALUE).
_GH_SECRET_BODY = rf"{_BLANK}(?:--body(?:=|{_BLANK}++)|-b(?:{_BLANK}++|(?=[^\s-])))(?:{_ARGUMENT})"
# DigitalOcean's doctl -t TOKEN (-tTOKEN, -t=TOKEN; a global option, so any command's:
# doctl auth init -t TOKEN); --access-token is an option naming a secret.
_DOCTL_TOKEN = rf"{_BLANK}-t(?:{_BLANK}++|=)?+(?=[^\s-])(?:{_ARGUMENT})"
# dotnet nuget push (delete) -k KEY (-kKEY); --api-key is an option naming a secret.
_NUGET_API_KEY = rf"{_BLANK}-k(?:{_BLANK}++|(?=\S))(?!-)(?:{_ARGUMENT})"
# lftp -u USER,PASSWORD (also inside its -c and -e scripts: open -u USER,PASSWORD HOST):
# the part after the first ',', the user kept.
_LFTP_USER = (
    rf"{_BLANK}-u{_BLANK}++"
    rf"""(?:'[^\s,']*,([^']+)'|"[^\s,"]*,([^"]+)"|[^\s,'"\\]*,(?:{_ARGUMENT}))"""
)
# HTTPie's -a VALUE (-a=VALUE, -aVALUE): USER:PASSWORD, or a token with -A bearer; whole,
# as its --auth's value is read (an option naming a secret). On a command line glued only
# with a ':': a quoted 'http -a' (grep -rn 'http -a' docs/) is not sure to run it.
_HTTPIE = ("http", "https", "httpie")
_HTTPIE_AUTH = rf"{_BLANK}-a(?:{_BLANK}++|=|(?=[^\s:]*+:))(?=[^\s-])(?:{_ARGUMENT})"
# Commands that run the command after them (sudo http -a ...), shell words before one, and
# python -m httpie: their options, numbers (timeout 10) and assignments stand between.
_WRAPPERS = (
    "env|sudo|doas|command|exec|time|nohup|nice|timeout|xargs|watch|stdbuf|python[0-9.]*"
    "|then|do|else|if|while|until"
)
_WRAPPER = re.compile(rf"(?:{_WRAPPERS})", _FLAGS)
# A word's characters up to a quote or another start of a command (see _HTTPIE_START):
# a prefix read across one would be read again from it, in time quadratic in a line of
# such words.
_PREFIX_CHAR = r"""[^\s;&|<>(){}!"'`]"""
_PATH_HEAD = rf"{_PREFIX_CHAR}*/"
# HTTPie's names are ordinary words (a web root /srv/http, a Go package ./internal/http,
# "http" in a commit message): taken as the program only where a command runs one, at the
# start of a command (of the line, after ; & | ( ) { } ! a newline, or a quote opening a
# script: sh -c 'http ...'), past wrappers, assignments and options; a path only as
# .../bin/http.
_HTTPIE_NAME = rf"(?:(?:{_PATH_HEAD})?bin/)?(?:https?|httpie){_NAME_END}(?={_BLANK})"
_PREFIX_WORD = (
    rf"(?:(?:{_PATH_HEAD})?(?:{_WRAPPERS})"
    # (A quoted value's closing quote starts a command of its own: X="a b" http -a.)
    rf"|[A-Za-z_][A-Za-z0-9_]*={_PREFIX_CHAR}*+"
    # sudo -u bob: a short option's value, unless it is the program.
    rf"|-[A-Za-z](?:{_BLANK}++(?!{_HTTPIE_NAME})[^\s;&|<>(){{}}!\"'`-]{_PREFIX_CHAR}*+)?"
    rf"|-{_PREFIX_CHAR}*+|[0-9]{_PREFIX_CHAR}*+)"
)
_HTTPIE_START = (
    rf"""(?:^|(?<=[\n;&|(){{}}!`"']))(?:{_BLANK})*+(?:{_PREFIX_WORD}(?:{_BLANK})++)*+"""
    rf"(?:{_HTTPIE_NAME})"
)
# macOS's keychain: security add-generic-password (add-internet-password) ... -w PASSWORD
# (a -w last, or before another option, prompts for it).
_KEYCHAIN_PASSWORD = rf"{_BLANK}-w(?:{_BLANK}++|(?=\S))(?!-)(?:{_ARGUMENT})"
# 7-Zip's and RAR's -pPASSWORD, glued (a lone -p asks for it; rar's -p- for none).
_ARCHIVERS = ("7z", "7za", "7zr", "7zz", "rar", "unrar")
_ARCHIVE_PASSWORD = rf"{_BLANK}-p(?!-(?:{_BLANK}|$))(?=\S)(?:{_ARGUMENT})"


def _positional_patterns() -> list[SecretPattern]:
    """The programs whose secret is a word in their arguments, found by where it stands."""
    return [
        _pattern(
            "password",
            _program_command(_SAMBA_CLIENTS),
            ("smb", "rpcclient", "net", "samba", "cifs"),
            values=_SAMBA_USER,
        ),
        _pattern(
            "password",
            _program_command(("smbclient",)),
            ("smbclient",),
            values=_SMBCLIENT_SERVICE,
        ),
        _pattern(
            "password",
            _program_command(("redis-cli", "valkey-cli", "keydb-cli")),
            ("-cli",),
            values=_REDIS_COMMAND_SECRET,
            # AUTH user [TAG], redacted again: the tag is the password, not the user.
            to_line_end=True,
        ),
        _pattern(
            "password",
            _program_command(("rabbitmqctl",)),
            ("rabbitmqctl",),
            values=_RABBITMQ_SECRET,
        ),
        _pattern("password", _CF_AUTH_COMMAND, ("auth",), values=_CF_AUTH_SECRET),
        _pattern("secret", _program_command(("mc", "mcli")), ("mc",), values=_MC_SECRET),
        _pattern("secret", _program_command(("vault", "bao")), ("login",), values=_VAULT_TOKEN),
        _pattern("password", _program_command(_ARCHIVERS), ("7z", "rar"), values=_ARCHIVE_PASSWORD),
        _pattern(
            "secret",
            _subcommand_command("gh", rf"secret{_BLANK}++set"),
            ("gh",),
            values=_GH_SECRET_BODY,
        ),
        _pattern(
            "secret",
            _subcommand_command("aws", rf"ssm{_BLANK}++put-parameter"),
            ("put-parameter",),
            values=_STORE_VALUE,
        ),
        _pattern(
            "secret",
            _subcommand_command("az", rf"keyvault{_BLANK}++secret{_BLANK}++set"),
            ("keyvault",),
            values=_STORE_VALUE,
        ),
        _pattern(
            "password",
            _program_command(("curl",)),
            ("curl",),
            value_kinds=(
                ("password", rf"{_CURL_CERT_PASSWORD}|{_CURL_PROXY_PASSWORD}"),
                ("cookie", _CURL_COOKIE),
            ),
        ),
        _pattern(
            "password",
            _program_command(("skopeo", "buildah", "podman")),
            ("skopeo", "buildah", "podman"),
            values=_CREDS,
        ),
        _pattern("secret", _program_command(("poetry",)), ("poetry",), values=_POETRY_TOKEN),
        _pattern("password", _program_command(("poetry",)), ("poetry",), values=_POETRY_PASSWORD),
        _pattern("secret", _CARGO_TOKEN, ("cargo",)),
        _pattern("secret", _program_command(("doctl",)), ("doctl",), values=_DOCTL_TOKEN),
        _pattern(
            "secret",
            _subcommand_command("dotnet", rf"nuget{_BLANK}++(?:push|delete)"),
            ("nuget",),
            values=_NUGET_API_KEY,
        ),
        _pattern("password", _program_command(("lftp",)), ("lftp",), values=_LFTP_USER),
        _pattern(
            "secret", _program_command(_HTTPIE, _HTTPIE_START), ("http",), values=_HTTPIE_AUTH
        ),
        _pattern(
            "password",
            _subcommand_command("security", r"add-(?:generic|internet)-password"),
            ("security",),
            values=_KEYCHAIN_PASSWORD,
        ),
        # Before the assignments: a tag they placed (pass=pw) would end the pairs' reading.
        _pattern("secret", _rclone_config_command(), ("rclone",), values=_RCLONE_PAIR),
    ]


def _subcommand_command(program: str, subcommand: str) -> str:
    """``program [flags] subcommand`` (``gh secret set``, ``aws ssm put-parameter``) as
    group 1, then the rest of its command, where a pattern's ``values`` read options that
    carry a secret only there (``gh issue create --body`` is no secret)."""
    start = rf"{_PROGRAM_START}{re.escape(program)}{_NAME_END}(?={_BLANK})"
    rest = rf"""(?:"[^"]*"|'[^']*'|\\[\s\S]|[<>]&|&>|>\||(?!{start})[^\n;&|])*"""
    return rf"({start}{_same_command(start)}{_BLANK}{subcommand}(?={_BLANK}|$)){rest}"


def _rclone_config_command() -> str:
    """``rclone [flags] config create NAME TYPE`` (or ``update NAME``, ``password
    NAME``) as group 1, then the rest of its command, where ``_RCLONE_PAIR`` reads."""
    start = rf"{_PROGRAM_START}rclone{_NAME_END}(?={_BLANK})"
    rest = rf"""(?:"[^"]*"|'[^']*'|\\[\s\S]|[<>]&|&>|>\||(?!{start})[^\n;&|])*"""
    return rf"({start}{_same_command(start)}{_RCLONE_CONFIG}){rest}"


# kubectl, and OpenShift's oc. Their options that set an environment variable take
# NAME=VALUE (kubectl run --env, kubectl set env -e, oc new-app -e), and so do the
# arguments of ``set env``: the VALUE is the secret, however the variable is named.
_KUBECTL = rf"{_PROGRAM_START}(?:kubectl|oc){_NAME_END}(?={_BLANK})"
_KUBECTL_ENV_OPTION = r"--env|-e"
# git's http.extraheader (also http.<url>.extraheader): a header git adds to every
# request, in practice a credential whatever the header is called (X-Auth: tok). The
# setting as a word of its own (after white space, a quote or the start), so that a
# scan for it starts once per word; then the header's name, kept when it is written as
# one ("X-Auth: tok": a name starting with a letter, a colon, white space). Without the
# white space it could be part of the secret ("a1:b2"), which is then tagged whole.
_EXTRA_HEADER = r"""(?:^|(?<=[\s'"]))http\.(?:[^\s=]*?\.)?extraheader"""
_HEADER_NAME = r"(?:[A-Za-z][A-Za-z0-9_.!#$%&*+^`|~-]*:[ \t]+)?+"
# A YAML mapping key at the start of a line (indented, or after a list's "- "), and
# the plain scalar after its ": ", to the end of the line less a " #" comment.
_YAML_KEY = r"(?m:^)[ \t]*(?:-[ \t]+)?[A-Za-z0-9_.-]*?"
_YAML_PLAIN_VALUE = r"[ \t]*:[ \t]+((?![\s\"'&*!|>{\[#%@`])[^\r\n]*?)(?=[ \t]+#|[ \t]*(?m:$))"
# A line of a dotenv or properties file, NAME=value alone on its line (a here-document
# writing .env): its reader takes the value to the end of the line (less a ' #' comment),
# '<', '&', ';' and quotes included. Only a value of one unbroken run: white space, a
# backslash, a backquote, a '$(' or an opening quote leave the line to the patterns
# below, so a shell line keeps what it runs readable (PASSWORD=x; reboot).
_ENV_LINE_KEY = r"(?m:^)[ \t]*(?:export[ \t]+)?[A-Za-z0-9_.-]*?"
_ENV_LINE_VALUE = r"=((?![\"'])(?:(?!\$\(|`)[^\s\\])++)(?=[ \t]+#|[ \t]*(?m:$))"
# After a closing quote: the shell word ends there (else it goes on in another piece).
_WORD_ENDS = r"(?![^\s;&|<>()])"
# The name of a setting that holds a secret, as ``aws configure set`` takes it, and
# ``npm config set`` (//registry.npmjs.org/:_authToken), yarn's, pnpm's, kubectl's.
# A lookahead, then a possessive run: a repeated run would backtrack quadratically on a
# long word that names no setting. Not "tokens" (max_tokens counts them).
_SETTING_NAME = (
    r"(?=[A-Za-z0-9_.:/@-]*?(?:secret|token(?!s)|passw(?:or)?d|passphrase))[A-Za-z0-9_.:/@-]++"
)
# The rest of its command, to a command separator or the next start of the program;
# quoted text and a backslash's escape are taken whole (a ';' inside quotes or after a
# backslash does not end the command, and a backslash and a newline continue it). A
# quote never closed is one character: scanning on from it for its end is done once.
_KUBECTL_REST = rf"""(?:"[^"]*"|'[^']*'|\\[\s\S]|(?!{_KUBECTL})[^\n;&|])*"""
# The key of a KEY=VALUE, and the name of a variable set by ``kubectl set env``.
_ASSIGNED_KEY = r"""[^\s='"\\]+"""
_ENV_NAME = r"[._A-Za-z][-._A-Za-z0-9]*"
# A PEM private key is left to its own pattern, which takes it to its END line: a bare
# value ends at white space, and its first word would hide the start of the block.
_NOT_PRIVATE_KEY = r"(?!-----BEGIN [A-Z0-9 ]*PRIVATE KEY)"
# The pieces of a word before its first '=', bare or quoted.
_BEFORE_ASSIGNED = r"""(?:[^\s"'=\\]|\\[^"]|"[^"=]*"|'[^'=]*')*"""


def _assignment(key: str) -> str:
    """A word ``KEY=VALUE``, quoted whole or in part; VALUE is the last group taking part
    (as in ``_ARGUMENT``). A word with a quoted piece before its '=' (``"KEY"=VALUE``,
    ``"KEY=VALUE"x``, ``'k=a b'-x``) is taken whole, if something of the word follows its
    '=' (redacted again, an argv item ``$'k'=`` before its tag keeps the key that its
    list scan kept)."""
    return (
        rf"""(?:\\"{key}=((?:[^"\\]|\\[^"])*)(?:\\?"|$)"""
        rf"""|"{key}=([^"]*)"(?![^\s;&|<>()])|'{key}=([^']*)'(?![^\s;&|<>()])"""
        rf"""|"{key}=([^"]*)\Z|'{key}=([^']*)\Z"""
        rf"""|{key}={_NOT_PRIVATE_KEY}(?:{_ARGUMENT})"""
        rf"""|(?=[^\s=]*["'])(?={_BEFORE_ASSIGNED}(?:=\S|"[^"=]*=[^"]|'[^'=]*=[^']))"""
        rf"""((?:"[^"]*"|'[^']*'|[^\s"'\\]|\\[^"])+))"""
    )


def _option_assignment(option: str) -> str:
    """``option`` and its value ``KEY=VALUE``, as one word or two (``--env=A=b``,
    ``--env A=b``), or the whole word quoted (``'--env=A=b c'``, as the gate quotes an
    argument with a space in a reason): VALUE is the last group taking part."""
    head = rf"(?:{option})=(?:{_ASSIGNED_KEY})="
    return (
        rf"""(?<![^\s])(?:'{head}([^']*)(?:'|\Z)|"{head}([^"]*)(?:"|\Z)"""
        rf"""|\\"{head}((?:[^"\\]|\\[^"])*)(?:\\?"|$)"""
        rf"""|(?:{option})(?:=|{_BLANK}+){_assignment(_ASSIGNED_KEY)})"""
    )


# Object keys whose string values are secrets whatever they look like, compared after
# lower-casing ASCII letters and dropping '-' and '_': the exact names, then any name
# ending in one of the suffixes ("apiToken", "dbPassword", "awsSecretAccessKey" ...).
# Only ASCII letters are lowered, as the screen (RE2, case-insensitive over bytes) does:
# a Kelvin sign does not make "\u212aey" a "key".
_SECRET_KEYS = {
    "pwd": "password",
    "auth": "secret",
    "authorization": "authorization",
    "proxyauthorization": "authorization",
    "cookie": "cookie",
    "setcookie": "cookie",
    # A cookie jar: {"session": "..."}, or a list of cookies (see ``_value``).
    "cookies": "cookie",
    # Rails' SECRET_KEY_BASE (a key ending in "key" is no secret by itself).
    "secretkeybase": "secret",
}
_SECRET_KEY_SUFFIXES = (
    ("password", "password"),
    ("passwd", "password"),
    ("passphrase", "password"),
    ("secret", "secret"),
    ("token", "secret"),
    ("apikey", "api-key"),
    ("privatekey", "private-key"),
    ("secretkey", "secret"),
    ("secretaccesskey", "secret"),
    ("credential", "secret"),
    ("credentials", "secret"),
    ("codeverifier", "secret"),
    ("devicecode", "secret"),
    ("secretstring", "secret"),
    ("secretbinary", "secret"),
    *(
        (f"{qualifier}key", "secret")
        for qualifier in (
            *("account", "storage", "encryption", "signing", "subscription", "master"),
            *("shared", "auth", "app", "application"),
        )
    ),
    # Plurals: a list or an object of them ("secrets", "apiKeys" ...). Not "tokens": an
    # LLM request's "maxTokens": 100 and "usage": {"tokens": ...} count, they hold none.
    ("passwords", "password"),
    ("passwds", "password"),
    ("passphrases", "password"),
    ("secrets", "secret"),
    ("apikeys", "api-key"),
    ("privatekeys", "private-key"),
    ("secretkeys", "secret"),
    ("secretaccesskeys", "secret"),
    ("codeverifiers", "secret"),
    ("devicecodes", "secret"),
)
_ALL_KEY_NAMES = sorted({*_SECRET_KEYS, *dict(_SECRET_KEY_SUFFIXES)})
_KEY_KINDS = sorted({*_SECRET_KEYS.values(), *dict(_SECRET_KEY_SUFFIXES).values()})


def _spread(name: str) -> str:
    """``name`` with '-' and '_' anywhere, as ``secret_key_kind`` ignores them."""
    return "[-_]*".join(re.escape(letter) for letter in name) + "[-_]*"


# An XML element named as an object key holding a secret would be (``secret_key_kind``):
# ``<password>…</password>``, ``<ns:apiToken>…</ns:apiToken>``, ``<db_password
# encrypted="no">…</db_password>``. The secret is its text, without the white space
# around it, or its one CDATA section's text, up to the next tag (or to the end of a text
# cut short). An element holding other elements holds no text of its own: those are
# read on their own. A CDATA section ends at the next one's start as well, so that many
# unclosed sections cost linear time.
_XML_PREFIX = r"<(?:[A-Za-z_][\w.-]*:)?"
_XML_SPACE = r"[ \t\r\n]"  # XML's white space (its S production)
_XML_VALUE = (
    rf"(?:{_XML_SPACE}[^<>]*)?(?<!/)>{_XML_SPACE}*+"
    r"(?:<!\[CDATA\[((?:[^\]<]|\](?!\]>)|<(?!!\[CDATA\[))*+)"
    rf"(?:\]\]>{_XML_SPACE}*+(?=</)|\Z)"
    rf"|((?:[^<\t\r\n ]|{_XML_SPACE}++(?=[^<\t\r\n ]))++){_XML_SPACE}*+(?=</|\Z))"
)


def _xml_element(kind: str) -> SecretPattern:
    """The elements whose name ``secret_key_kind`` gives ``kind``; their text is the secret."""
    names = [_spread(name) for name, named in _SECRET_KEYS.items() if named == kind]
    endings = [_spread(name) for name, named in _SECRET_KEY_SUFFIXES if named == kind]
    if endings:
        names.append(rf"[\w.-]*?(?:{'|'.join(endings)})")
    regex = rf"{_XML_PREFIX}(?:{'|'.join(names)}){_XML_VALUE}"
    return _pattern(kind, regex, ("<",), ignore_case=True)


# What a program reads from its standard input as a secret: docker's, podman's, helm's,
# oras's ... --password-stdin, gh's --with-token, RHEL's passwd --stdin, and chpasswd
# (user:password lines). The secret is a here-string's word in the same command
# (--password-stdin <<< pw), or what echo or printf writes into the pipe to it.
_STDIN_PASSWORD = r"(?:--(?:password|pass)-stdin|passwd[ \t]+--stdin|chpasswd)(?![\w-])"
_STDIN_SECRET = r"(?:--(?:token|secret)-stdin|--with-token)(?![\w-])"
# Commands that store what they read from standard input as a secret's value, or log in
# with it: gcloud secrets versions add (create) NAME --data-file=- (or /dev/stdin),
# docker's (podman's) secret create NAME -, gh secret set NAME (without --body), vault
# login - (bao's), and cargo login. Among the words before the '-', not the word that
# starts the command again ("secret", "secrets", "cargo"): each start is scanned from once.
_STDIN_WORD_END = r"""(?![^\s;&|<>()"'`\\])"""
# cargo's global options before login (+stable, -q, --registry NAME), as _CARGO_OPTIONS.
_CARGO_STDIN_OPTIONS = (
    rf"(?:[ \t]+(?:--?(?:{_CARGO_VALUE_FLAGS})[ \t]+(?!-|cargo{_STDIN_WORD_END})[^\s;&|<>()]+"
    r"|[+-][^\s;&|<>()]*))*+"
)
_STORE_WORD = rf"[ \t]+(?!-{_STDIN_WORD_END}|secrets?{_STDIN_WORD_END})[^\s;&|<>()]+"
_STDIN_STORE = (
    rf"(?:(?:\bsecrets[ \t]+(?:versions[ \t]+add|create)(?:{_STORE_WORD})*?"
    rf"[ \t]+--data-file(?:=|[ \t]+)"
    rf"|\bsecret[ \t]+create(?:{_STORE_WORD})*?[ \t]+"
    rf"|\b(?:vault|bao)[ \t]+login(?:[ \t]+--?(?:(?:{_VAULT_VALUE_FLAGS})[ \t]+(?!-)[^\s;&|<>()]+"
    rf"|[A-Za-z][^\s;&|<>()]*))*+[ \t]+)(?:-|/dev/stdin){_STDIN_WORD_END}"
    rf"|\bsecret[ \t]+set{_STDIN_WORD_END}"
    rf"|\bcargo{_CARGO_STDIN_OPTIONS}[ \t]+login{_STDIN_WORD_END})"
)
# sudo -S (--stdin) reads the user's password from its standard input: its options
# before the command (-S among flags, -u root, --user=root), not the command's own. An
# option's value is not the word sudo: a scan from one sudo stops at the next, so that
# "sudo -u sudo -u ..." is read in linear time, not from every sudo to the end.
_SUDO_STDIN = (
    r"sudo(?:[ \t]+(?:-[ugpCDhRrTU][ \t]+(?!-|sudo(?!\S))\S+|-[A-Za-z]+|--[a-z-]+=\S+))*?"
    r"[ \t]+(?:(?-i:-[A-Za-z]*S[A-Za-z]*)|--stdin)(?![\w-])"  # not -s, which runs a shell
)
# The rest of a simple command, lazily: not past a separator, a pipe, or the word that
# starts the scan again (so that each start is scanned from once: linear time).
_REST_OF_COMMAND = r"(?:(?!<<<|{stop})(?:[^\n;&|]|\\\n))*?"


# A here-document's operator and delimiter (<<EOF, <<-'EOF', << "EOF", <<\EOF), and its
# text, line by line, to the delimiter's line or the end.
_HEREDOC_HEAD = r"""<<-?[ \t]*\\?(?P<quote>["']?)(?P<delimiter>[A-Za-z0-9_.-]+)(?P=quote)"""
_HEREDOC_BODY = r"(?:(?![ \t]*(?P=delimiter)[ \t]*(?:\n|\Z))[^\n]*+(?:\n|\Z))*+"


def _stdin_heredoc_patterns(
    kind: str, option: str, literals: tuple[str, ...]
) -> list[SecretPattern]:
    """A here-document on a line that names ``option`` (chpasswd <<EOF, cat <<EOF |
    chpasswd, docker login --password-stdin <<EOF): each line of its text is a secret."""
    line = r"(?m:^)(?:[^\n<]|<(?!<))*?"
    return [
        _pattern(
            kind,
            rf"({head}[^\n]*\n){_HEREDOC_BODY}",
            literals,
            ignore_case=True,
            values=r"(?m:^)[ \t]*([^\n]*[^\s])",
            # A line that goes on in a tag placed before: the tag holds its secret.
            to_line_end=True,
        )
        for head in (
            rf"{line}{option}{_REST_OF_COMMAND.format(stop=option)}{_HEREDOC_HEAD}",
            rf"{line}{_HEREDOC_HEAD}[^\n]*?{option}",
        )
    ]


def _stdin_patterns(kind: str, option: str, literals: tuple[str, ...]) -> list[SecretPattern]:
    """The three ways a secret reaches ``option``'s standard input on a command line."""
    rest = _REST_OF_COMMAND.format(stop=option)
    # printf's format, when it only writes its argument ('%s', '%s\n').
    printf_format = rf"""(?:{_BLANK}+(?:'%s(?:\\n)?'|"%s(?:\\n)?"|%s))?"""
    # Not an expansion ($TOKEN, $(cat f), `cat f`), whose value the line does not show
    # (tagging its first word would hide a command); $'...' is a quoted word.
    word = rf"(?!\$[^']|`){_VALUE}"
    return [
        _pattern(kind, rf"{option}{rest}<<<{_BLANK}*{word}", literals, ignore_case=True),
        _pattern(kind, rf"<<<{_BLANK}*{word}(?={rest}{option})", literals, ignore_case=True),
        _pattern(
            kind,
            rf"""(?:^|(?<=[\s;&|("'`]))(?:echo|printf)(?:{_BLANK}+-[neE]+)*{printf_format}"""
            rf"{_BLANK}+{word}(?={_BLANK}*\|(?!\|){rest}{option})",
            literals,
            ignore_case=True,
        ),
    ]


# SQL that sets a password, as psql -c, mysql -e or a script carries it: PostgreSQL's
# CREATE and ALTER ROLE ... [ENCRYPTED] PASSWORD 'pw', MySQL's PASSWORD('pw'),
# SET PASSWORD [FOR user] = 'pw', and IDENTIFIED [WITH plugin] BY 'pw' (MySQL, MariaDB;
# Oracle's, also unquoted: CREATE or ALTER USER name IDENTIFIED BY pw). SQL doubles a
# quote inside a literal ('it''s').
_SQL_LITERAL = r"'((?:[^']|'')*)'"
_SQL_PASSWORD = (
    # PostgreSQL's CREATE and ALTER ROLE (or USER) name ... PASSWORD 'pw': not a quoted
    # 'password' anywhere (grep 'password' file | grep -v 'x').
    rf"\b(?:create|alter)\s+(?:role|user)\s[^;\n]{{0,200}}?\bpassword\s+{_SQL_LITERAL}"
    rf"|\bpassword\s*\(\s*{_SQL_LITERAL}\s*\)"
    rf"|\bset\s+password\s+(?:for\s+[^=;\n]{{1,200}}?)?=\s*{_SQL_LITERAL}"
    rf"""|\bidentified\s+(?:with\s+[^\s;]+\s+)?by\s+(?:{_SQL_LITERAL}|"([^"\n]*)")"""
    # Oracle's unquoted password, only in the statement that sets it (not "identified by"
    # in prose).
    rf"""|\b(?:create|alter)\s+user\s+[^\s;]+\s+identified\s+by\s+([^\s'";\\]+)"""
)

# A .netrc entry (curl -n, git, ftp and Python's requests read the file): "machine HOST"
# (or "default login USER"), login, account or port with their values in any order, then
# "password" (or "passwd") and the password, separated by white space, on one line or
# several, as an agent writes the file (echo 'machine h login u password pw' >> ~/.netrc,
# a here-document), or by printf's and echo -e's escapes (printf 'machine h\nlogin u\n
# password pw\n'), which no word holds. A login or account is required ("the machine
# learning password policy" is prose), except in a string naming netrc. Possessive, and
# ending at the next entry: each entry is read once.
_NETRC_ESCAPE = r"\\[ntr]"
_NETRC_BLANK = rf"(?:[ \t\r\n]|{_NETRC_ESCAPE})+"
_NETRC_WORD = r"(?:[^\s\\]|\\[^\sntr])++"
# A bare password ends at an escape (the next line's), else it is read as any value is.
_NETRC_VALUE = rf"""(?:((?:[^\s"'\\;&<>]|\\[^\s"ntr])++)(?={_NETRC_ESCAPE})|{_VALUE})"""


def _netrc_password(login_required: bool) -> str:
    field = (
        rf"{_NETRC_BLANK}(?:login|account|port){_NETRC_BLANK}(?!(?:machine|default)\b){_NETRC_WORD}"
    )
    fields = rf"(?:{field})*+"
    if login_required:
        port = rf"{_NETRC_BLANK}port{_NETRC_BLANK}{_NETRC_WORD}"
        login = (
            rf"{_NETRC_BLANK}(?:login|account){_NETRC_BLANK}(?!(?:machine|default)\b){_NETRC_WORD}"
        )
        fields = rf"(?:{port})*+{login}{fields}"
    return (
        rf"(?:(?:\b|(?<={_NETRC_ESCAPE}))machine{_NETRC_BLANK}{_NETRC_WORD}"
        rf"|(?:\b|(?<={_NETRC_ESCAPE}))default(?={_NETRC_BLANK}login{_NETRC_BLANK}))"
        rf"{fields}{_NETRC_BLANK}pass(?:word|wd){_NETRC_BLANK}{_NETRC_VALUE}"
    )


# A line of libpq's password file (~/.pgpass, PGPASSFILE): host:port:database:user:password,
# a backslash escaping a ':' or itself in a field. The password is the rest of the quoted
# word holding the line (echo 'h:5432:db:u:pw' > ~/.pgpass; printf's '\n' is not its),
# of its line (a here-document), or of its bare word. Only in a string naming the file:
# five fields joined by ':' are common elsewhere.
_PGPASS_FIELD = r"""(?:[^\s:'"\\]|\\.)+"""
_PGPASS_HEAD = rf"{_PGPASS_FIELD}:(?:[0-9]+|\*):{_PGPASS_FIELD}:{_PGPASS_FIELD}:"
_PGPASS_LINE = (
    rf"""'{_PGPASS_HEAD}([^'\n]*?)(?:\\n)*(?='|\n|\Z)"""
    rf"""|"{_PGPASS_HEAD}((?:[^"\\\n]|\\[^n\n])*)(?:\\n)*(?="|\n|\Z)"""
    rf"""|(?m:^)[ \t]*{_PGPASS_HEAD}([^\n]*?)[ \t]*['"]?[ \t]*(?m:$)"""
    rf"""|(?<=[ \t]){_PGPASS_HEAD}((?:[^\s"'\\;&|<>]|\\.)+)"""
)


# The secret is the last group that took part in the match. Order matters: earlier
# kinds win where patterns overlap (an Authorization header carrying a JWT is reported
# as "authorization"), and the patterns that read a program's arguments come first,
# while no tag placed by another pattern cuts the command line apart (each pattern is
# run on the text between tags). The literals only spare a search: a string that holds
# none of them (after str.lower, which lowers every ASCII letter) cannot match.
# The data: or stringData: line (group 1), then the lines indented under it.
_SECRET_DATA_YAML = (
    r"(?m)(^([ \t]*)(?:data|stringData):[ \t]*(?:#[^\n]*)?\n)"
    r"(?:(?:\2[ \t]+[^\n]*|[ \t]*)(?:\n|\Z))+"
)
# A value runs to the end of its line, less a comment (" #": a '#' inside it is its own);
# a block scalar's (key: |, key: >-) is every line after it indented deeper than its key.
_SECRET_DATA_YAML_LINE = (
    r"(?m)^([ \t]+)(?![#-])[^\s:#][^:\n]*:[ \t]+(?:"
    r"((?![|>&*!#])[^\n]*?)[ \t]*(?:[ \t]#[^\n]*)?$"
    r"|[|>][-+1-9]{0,2}[ \t]*(?:#[^\n]*)?\n"
    r"((?:[ \t]*\n)*+\1[ \t]+[^\n]*+(?:\n(?:[ \t]*\n)*+\1[ \t]+[^\n]*+)*+))"
)
_SECRET_DATA_JSON = r"""(\\?"(?:data|stringData)\\?"[ \t]*:[ \t]*\{)[^{}]*\}"""
_SECRET_DATA_JSON_VALUE = r"""\\?"[^"\\]*\\?"[ \t]*:[ \t]*\\?"([^"\\]+)"""

_PATTERNS: list[SecretPattern] = [
    # A here-document fed to chpasswd or to --password-stdin: each line whole. First, so
    # that a token on one of its lines (tagged on its own, it would end the text the
    # pattern is run on) does not hide the lines after it.
    *_stdin_heredoc_patterns("password", _STDIN_PASSWORD, ("-stdin", "chpasswd")),
    *_stdin_heredoc_patterns("secret", _STDIN_SECRET, ("-stdin", "--with-token")),
    *_stdin_heredoc_patterns("secret", _STDIN_STORE, ("data-file", "secret", "login")),
    *_stdin_heredoc_patterns("password", _SUDO_STDIN, ("sudo",)),
    # A Kubernetes Secret's data as text, in a string that names a secret (kind: Secret,
    # kubectl patch secret): each "key: value" line of a YAML data: or stringData:
    # block (a block scalar's lines as one value), each "key": "value" of a JSON one.
    # Before the patterns that find one secret in a value: a tag placed inside the block
    # would end the text this pattern reads, and hide every value after it.
    _pattern(
        "secret",
        _SECRET_DATA_YAML,
        ("secret",),
        named_program=True,
        trim=True,
        values=_SECRET_DATA_YAML_LINE,
    ),
    _pattern(
        "secret",
        _SECRET_DATA_JSON,
        ("secret",),
        named_program=True,
        values=_SECRET_DATA_JSON_VALUE,
    ),
    # sshpass -p pw / -ppw, among sshpass's own options (ssh's -p PORT after it is not).
    _pattern(
        "password",
        rf"{_PROGRAM_START}sshpass{_NAME_END}(?:{_BLANK}+-(?:[fdP]{_BLANK}*[^\s-]\S*|[evhV]+))*"
        # -p alone or after flags in one cluster (-vp pw).
        rf"{_BLANK}+-[evhV]*p{_BLANK}*+(?:{_ARGUMENT})",
        ("sshpass",),
    ),
    # redis-cli -a pw (and Valkey's, KeyDB's); --pass is a secret option everywhere.
    _pattern(
        "password",
        rf"{_REDIS_CLI}{_same_command(_REDIS_CLI)}{_BLANK}-a{_BLANK}++(?:{_ARGUMENT})",
        ("-cli",),
    ),
    # docker login -p pw (-ppw, -p=pw), and the same for podman, nerdctl, buildah, skopeo.
    _pattern(
        "password",
        rf"{_CONTAINER_LOGIN}{_same_command(_CONTAINER_LOGIN)}"
        # Possessive: in "-p=" before a tag, the '=' is not the value.
        rf"{_BLANK}-p(?:{_BLANK}+|=)?+(?:{_ARGUMENT})",
        ("login",),
    ),
    # helm registry login -p pw, oc login -p pw, twine upload -p pw, poetry publish -p pw ...
    *_subcommand_password_patterns(),
    # htpasswd -b: the password is the last positional argument, the third (file user
    # password), or the second with -n (user password).
    _pattern(
        "password",
        rf"{_PROGRAM_START}htpasswd{_NAME_END}(?=(?:{_HTPASSWD_OPTION})*?{_BLANK}+-[A-Za-z]*b)"
        rf"(?:(?=(?:{_HTPASSWD_OPTION})*?{_BLANK}+-[A-Za-z]*n)(?:{_HTPASSWD_OPTION})*{_HTPASSWD_WORD}"
        rf"|(?:{_HTPASSWD_OPTION})*{_HTPASSWD_WORD}{_HTPASSWD_WORD})"
        rf"{_BLANK}++(?:{_ARGUMENT})",
        ("htpasswd",),
    ),
    # keytool -storepasswd / -keypasswd -new NEWPASSWORD.
    _pattern(
        "password",
        rf"{_KEYTOOL}{_same_command(_KEYTOOL)}{_BLANK}-new{_BLANK}++(?:{_ARGUMENT})",
        ("keytool",),
    ),
    # openssl enc -k password, -K hex key.
    _pattern(
        "password",
        rf"{_OPENSSL}{_same_command(_OPENSSL)}{_BLANK}-[kK]{_BLANK}++(?:{_ARGUMENT})",
        ("openssl",),
    ),
    # ldapsearch -w pw, sqlcmd -P pw, mongodump -p pw, zip -P pw, ssh-keygen -N pw ...
    *_own_option_patterns(),
    # smbclient -U user%pw, redis-cli AUTH pw, rabbitmqctl add_user u pw, vault login tok ...
    *_positional_patterns(),
    # kubectl set env NAME=VALUE ... (and its -e/--env options), several in one command:
    # the values after "set env" (not a selector's, -l app=web, or an output's).
    _pattern(
        "secret",
        rf"({_KUBECTL}{_same_command(_KUBECTL)}{_BLANK}set{_BLANK}+env)(?={_BLANK}){_KUBECTL_REST}",
        ("kubectl", "oc"),
        values=rf"{_option_assignment(_KUBECTL_ENV_OPTION)}"
        rf"|(?<![^\s])(?<!-l )(?<!-o )(?<!--selector )(?<!--output ){_assignment(_ENV_NAME)}",
    ),
    # kubectl run --env=NAME=VALUE, oc new-app -e NAME=VALUE ..., several in one command.
    _pattern(
        "secret",
        rf"({_KUBECTL}){_same_command(_KUBECTL)}{_BLANK}"
        rf"""(?=(?:['"]|\\")?(?:{_KUBECTL_ENV_OPTION})(?:=|{_BLANK})){_KUBECTL_REST}""",
        ("kubectl", "oc"),
        values=_option_assignment(_KUBECTL_ENV_OPTION),
    ),
    # --from-literal=KEY=VALUE (kubectl create secret generic, and create configmap,
    # kustomize edit add secret): no other program has the option, so it needs no name.
    _pattern("secret", _option_assignment("--from-literal"), ("from-literal",)),
    _pattern(
        "private-key",
        # PEM blocks, and OpenPGP's armored private keys (RFC 9580: "PRIVATE KEY BLOCK").
        r"(-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----[\s\S]*?"
        r"(?:-----END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|$))",
        ("-----begin ",),
    ),
    _pattern(
        "authorization",
        r"\b(?:"
        # The name inside a quoted word or string ('Authorization: ...'): to its end.
        rf"(?<=\\\"){_AUTH_HEAD}{_AUTH_IN_ESCAPED}"
        rf"|(?<=\"){_AUTH_HEAD}{_AUTH_IN_DOUBLE}"
        rf"|(?<='){_AUTH_HEAD}{_AUTH_IN_SINGLE}"
        # A header line: to the end of the line.
        rf"|(?:^|(?<=\n)){_AUTH_HEAD}{_AUTH_TO_LINE_END}"
        # The value quoted after the name ("Authorization": "Bot ..."): to its closing
        # quote. Not when that quote is the one that opened a string just before the
        # name: in grep "Authorization: " && rm -rf /srv it closes the string, and the
        # header's value is empty (taken for an opening quote, it hid the rm).
        rf"|(?:{_AUTH_NAME}{_KEY_QUOTE}|(?<!\\\")(?<!\\\"proxy-){_AUTH_NAME})\s*[:=]\s*"
        rf"\\\"{_AUTH_SCHEME}{_AUTH_IN_ESCAPED}"
        rf"|(?:{_AUTH_NAME}{_KEY_QUOTE}|(?<!\")(?<!\"proxy-){_AUTH_NAME})\s*[:=]\s*"
        rf"\"{_AUTH_SCHEME}{_AUTH_IN_DOUBLE}"
        rf"|(?:{_AUTH_NAME}{_KEY_QUOTE}|(?<!')(?<!'proxy-){_AUTH_NAME})\s*[:=]\s*"
        rf"'{_AUTH_SCHEME}{_AUTH_IN_SINGLE}"
        # Anywhere else: the scheme, then the credentials as RFC 9110 writes them.
        rf"|{_AUTH_NAME}{_QUOTE}\s*[:=]\s*(?![\\\"']){_AUTH_SCHEME}{_AUTH_CREDENTIALS})",
        ("authorization", "authorisation"),
        ignore_case=True,
        trim=True,
    ),
    _pattern(
        "cookie",
        # The value starts after the white space (redacted again, "Cookie: " before a
        # tag keeps its space).
        rf"\b(?:set-)?cookie{_QUOTE}\s*[:=]\s*{_QUOTE}"
        r"""((?:[^\s"'\\]|\\[^"])(?:[^"'\n\\]|\\[^"])*)""",
        ("cookie",),
        True,
    ),
    # A header (X-Api-Key: ..., "api-key": ...); not an option (--api-key=$'k' is a
    # shell word, read whole by the secret pattern).
    _pattern(
        "api-key",
        rf"(?<![\w-])(?:x-)?(?:api-key|auth-token){_QUOTE}\s*[:=]\s*{_QUOTE}({_TOKEN})",
        ("api-key", "auth-token"),
        ignore_case=True,
    ),
    _pattern("url-credentials", _URL_AUTHORITY + r"[^/\s:@]*:([^/\s@]+)@", ("://",)),
    # A password holding a '/' unencoded: such a URL is invalid (the authority ends at the
    # '/'), but it is still recorded (a 400's body, a command line). Not a port's digits
    # ("host:8443/users/@me" keeps its path). Bounded: tried from every "://", an
    # unbounded run would make a long line without '@' quadratic.
    _pattern(
        "url-credentials",
        _URL_AUTHORITY + r"[^/\s:@]*:((?![0-9]*/)[^/\s@]{0,256}/[^\s@]{0,256})@",
        ("://",),
    ),
    # A token as the user of a URL with no password (https://TOKEN@github.com/o/r, as
    # git and the forges accept): a user name of 20 or more letters, digits, '_' or '-'.
    # Shorter names and names with a '.' (git@, first.last@) are kept.
    _pattern("url-credentials", _URL_AUTHORITY + r"([A-Za-z0-9_-]{20,})@", ("://",)),
    _pattern("jwt", r"\b(eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*)", ("eyj",)),
    _pattern(
        "github-token",
        r"\b(gh[pousr]_[A-Za-z0-9]{20,255}|github_pat_\w{20,255})",
        ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
    ),
    # GitLab's personal, deploy, runner and pipeline-trigger tokens.
    _pattern(
        "gitlab-token",
        r"\b((?:glpat|gldt|glrt|glptt)-[A-Za-z0-9_-]{20,})",
        ("glpat-", "gldt-", "glrt-", "glptt-"),
    ),
    _pattern("npm-token", r"\b(npm_[A-Za-z0-9]{36})(?![A-Za-z0-9])", ("npm_",)),
    _pattern("huggingface-token", r"\b(hf_[A-Za-z0-9]{30,})", ("hf_",)),
    _pattern("pypi-token", r"\b(pypi-AgE[A-Za-z0-9_-]{50,})", ("pypi-age",)),
    _pattern("docker-token", r"\b(dckr_pat_[A-Za-z0-9_-]{20,})", ("dckr_pat_",)),
    # HashiCorp Vault's service, batch and recovery tokens.
    _pattern("vault-token", r"\b(hv[sbr]\.[A-Za-z0-9_-]{24,})", ("hvs.", "hvb.", "hvr.")),
    _pattern(
        "aws-access-key",
        r"\b((?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16})\b",
        ("akia", "asia", "abia", "acca"),
    ),
    _pattern("slack-token", r"\b(xox[a-z]-[A-Za-z0-9-]{8,})", ("xox",)),
    # Webhook URLs that are their own credential: whoever has one posts as the app.
    # Slack's https://hooks.slack.com/services/T…/B…/SECRET (and workflows, triggers),
    # Discord's /api/webhooks/ID/TOKEN, Telegram's /botID:TOKEN/: the ids stay readable.
    _pattern(
        "webhook-token",
        r"\bhooks\.slack\.com/(?:services|workflows|triggers)/(?:[A-Za-z0-9]+/)*([A-Za-z0-9]{16,})",
        ("hooks.slack.com",),
    ),
    _pattern(
        "webhook-token",
        r"\b(?:discord(?:app)?\.com|discord\.gg)/api(?:/v\d+)?/webhooks/\d+/([A-Za-z0-9_-]{16,})",
        ("/webhooks/",),
    ),
    _pattern(
        "bot-token", r"\bapi\.telegram\.org/(?:file/)?bot\d+:([A-Za-z0-9_-]{16,})", ("telegram",)
    ),
    # Microsoft Teams' (Office 365 connectors') incoming webhooks:
    # https://TENANT.webhook.office.com/webhookb2/GROUP@TENANT/IncomingWebhook/SECRET/OWNER
    # (outlook.office.com/webhook/... before), and the newer URLs' /V2... signature after
    # the owner's id. The ids stay readable. The signature first: once the secret before
    # it is a tag, "IncomingWebhook/" no longer leads to it.
    _pattern(
        "webhook-token",
        r"/IncomingWebhook/[A-Za-z0-9]+/[A-Za-z0-9-]+/(V2[A-Za-z0-9_-]{20,})",
        ("incomingwebhook/",),
    ),
    _pattern("webhook-token", r"/IncomingWebhook/([A-Za-z0-9]{16,})", ("incomingwebhook/",)),
    _pattern("api-key", r"(?<![A-Za-z0-9])(sk-[A-Za-z0-9_-]{16,})", ("sk-",)),
    _pattern("api-key", r"\b([sr]k_live_[A-Za-z0-9]{16,})", ("k_live_",)),
    _pattern("api-key", r"\b(AIza[0-9A-Za-z_-]{35})", ("aiza",)),
    # More vendors' keys, as secret scanners (GitHub push protection, gitleaks) know
    # them: each a prefix, then a length and an alphabet ordinary words do not have.
    # Stripe's test keys ("curl -u sk_test_...:", its documented form, puts the key where
    # the user goes) and its webhook signing secret, SendGrid's, Shopify's, Databricks',
    # DigitalOcean's, Grafana's and Tailscale's.
    _pattern("api-key", r"\b([sr]k_test_[A-Za-z0-9]{16,})", ("k_test_",)),
    _pattern("api-key", r"\b(whsec_[A-Za-z0-9+/]{24,}={0,2})", ("whsec_",)),
    _pattern("api-key", r"\b(SG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43})(?![A-Za-z0-9_-])", ("sg.",)),
    _pattern(
        "api-key",
        r"\b(shp(?:at|ca|pa|ss)_[a-fA-F0-9]{32})(?![A-Za-z0-9])",
        ("shpat_", "shpca_", "shppa_", "shpss_"),
    ),
    _pattern("api-key", r"\b(dapi[a-f0-9]{32}(?:-[0-9]+)?)(?![A-Za-z0-9])", ("dapi",)),
    _pattern("api-key", r"\b(do[opr]_v1_[a-f0-9]{64})(?![A-Za-z0-9])", ("_v1_",)),
    _pattern(
        "api-key",
        r"\b(glc_[A-Za-z0-9+/]{32,}={0,2}|glsa_[A-Za-z0-9]{32}_[A-Fa-f0-9]{8})",
        ("glc_", "glsa_"),
    ),
    _pattern("api-key", r"\b(tskey-[A-Za-z0-9-]{20,})", ("tskey-",)),
    # Sentry's organization (sntrys_, base64 JSON, '_', a secret) and user (sntryu_, hex)
    # auth tokens, Atlassian's API tokens, Linear's, Notion's, Replicate's, Groq's and
    # RubyGems' API keys: each vendor's prefix and alphabet, 20 characters or more (their
    # documented lengths are 40 to 190).
    _pattern(
        "api-key",
        r"\b(sntrys_[A-Za-z0-9+/=_]{20,}|sntryu_[a-f0-9]{20,})",
        ("sntrys_", "sntryu_"),
    ),
    _pattern("api-key", r"\b(ATATT3[A-Za-z0-9_=-]{20,})", ("atatt3",)),
    _pattern(
        "api-key",
        r"\b((?:lin_api|ntn|r8|gsk)_[A-Za-z0-9]{20,}|rubygems_[a-f0-9]{20,})",
        ("lin_api_", "ntn_", "r8_", "gsk_", "rubygems_"),
    ),
    # A Google OAuth access token (ya29.…, ya29.c.… a service account's), as a bearer
    # token after "Bearer" is: standing alone it gets the same tag. Dot-separated runs,
    # so a sentence's closing '.' stays outside it.
    _pattern(
        "bearer-token",
        r"\b(ya29\.(?=[A-Za-z0-9_.-]{20})[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*+)",
        ("ya29.",),
    ),
    # Slack's app-level token (xapp-1-A0123-1234-abcd...).
    _pattern("slack-token", r"\b(xapp-[0-9]-[A-Za-z0-9-]{20,})", ("xapp-",)),
    # age's identity (its private key), bech32: 58 characters after the "1".
    _pattern("private-key", r"\b(AGE-SECRET-KEY-1[0-9A-Z]{58})", ("age-secret-key-1",)),
    # Credential files as an agent writes them: a .netrc entry's password, a .pgpass line's.
    _pattern("password", _netrc_password(login_required=True), ("machine", "default")),
    _pattern("password", _netrc_password(login_required=False), ("netrc",), named_program=True),
    _pattern("password", _PGPASS_LINE, ("pgpass",), named_program=True),
    *(_xml_element(kind) for kind in _KEY_KINDS),
    # A line of YAML, "name: value" at the start of a line (a config in a context value,
    # a here-document's text): YAML reads a&b and a<b as one plain scalar, to the end of
    # the line less a comment. Not a value that starts as YAML's other forms do (quoted,
    # an anchor, alias, tag, block or flow): the patterns below read those.
    _pattern(
        "password",
        rf"{_YAML_KEY}(?:{_NAME_START}(?:passphrase|password|passwd|pwd|pass)|{_GLUED}(?:password|passwd)|{_PW})s?"
        rf"{_YAML_PLAIN_VALUE}",
        _PASSWORD_LITERALS,
        ignore_case=True,
        to_line_end=True,
    ),
    _pattern(
        "secret",
        rf"{_YAML_KEY}{_NAME_START}(?:{_SECRET_NAMES}|{_PLURAL_SECRET_NAMES}){_YAML_PLAIN_VALUE}",
        _SECRET_LITERALS,
        ignore_case=True,
        to_line_end=True,
    ),
    # A dotenv line, NAME=value to the end of its line (above, _ENV_LINE_VALUE).
    _pattern(
        "password",
        rf"{_ENV_LINE_KEY}(?:{_NAME_START}(?:passphrase|password|passwd|pwd|pass)|{_GLUED}(?:password|passwd)|{_PW})s?"
        rf"{_ENV_LINE_VALUE}",
        _PASSWORD_LITERALS,
        ignore_case=True,
        to_line_end=True,
    ),
    _pattern(
        "secret",
        rf"{_ENV_LINE_KEY}{_NAME_START}(?:{_SECRET_NAMES}|{_PLURAL_SECRET_NAMES}){_ENV_LINE_VALUE}",
        _SECRET_LITERALS,
        ignore_case=True,
        to_line_end=True,
    ),
    # A whole quoted word holding the assignment ('--password=a b', "PGPASSWORD=a b",
    # as the gate quotes an argument with a space in a reason), or a line of YAML
    # ('password: a<b c', as echo writes one into a file): up to the closing quote.
    _pattern(
        "password",
        rf"(?<![\w\\])(?:'{_QUOTED_PASSWORD}{_QUOTED_SIGN}([^']*)'"
        rf"|\"{_QUOTED_PASSWORD}{_QUOTED_SIGN}([^\"]*)\")",
        _PASSWORD_LITERALS,
        ignore_case=True,
    ),
    _pattern(
        "secret",
        rf"(?<![\w\\])(?:'{_QUOTED_SECRET}{_QUOTED_SIGN}([^']*)'"
        rf"|\"{_QUOTED_SECRET}{_QUOTED_SIGN}([^\"]*)\")",
        _SECRET_LITERALS,
        ignore_case=True,
    ),
    _pattern(
        "password",
        rf"(?:{_NAME_START}(?:passphrase|password|passwd|pwd|pass)|{_GLUED}(?:password|passwd)|{_PW})s?\b"
        rf"{_AFTER_NAME}\s*[:=]\s*{_VALUE}",
        _PASSWORD_LITERALS,
        ignore_case=True,
    ),
    _pattern(
        "secret",
        rf"{_NAME_START}(?:{_SECRET_NAMES}|{_PLURAL_SECRET_NAMES})\b{_AFTER_NAME}\s*[:=]\s*{_VALUE}",
        _SECRET_LITERALS,
        ignore_case=True,
    ),
    # A value named by a secret's name in a name/value pair, written as JSON text (a body
    # kept in an invalidRequest record, JSON in a string): {"name": "API_TOKEN", "value":
    # "..."}, as HAR files and Kubernetes env lists write them.
    _pattern(
        "secret",
        rf"""\\?"(?:name|key)\\?"\s*:\s*\\?"[A-Za-z0-9_.-]*?{_PAIR_NAMES}\\?"\s*,\s*"""
        rf"""\\?"value\\?"\s*:\s*{_VALUE}""",
        ("value",),
        ignore_case=True,
    ),
    _pattern("bearer-token", r"\bbearer\s+([A-Za-z0-9._~+/-]{8,}=*)", ("bearer",), True),
    # An option and its value as separate words of a command line (argv lists are
    # handled item by item, see ``option_kind``).
    _pattern(
        "password",
        rf"(?:^|(?<=\s)){_PASSWORD_OPTION}{_BLANK}++{_VALUE}",
        _PASSWORD_LITERALS,
        ignore_case=True,
    ),
    _pattern(
        "secret",
        rf"(?:^|(?<=\s)){_SECRET_OPTION}{_BLANK}++{_VALUE}",
        _SECRET_LITERALS,
        ignore_case=True,
    ),
    # curl's -u/--user user:password (also -uuser:pw, --user=user:pw), and its proxy's
    # -U/--proxy-user user:password: the part after the first colon. (docker's -u
    # uid:gid loses its gid to this; a secret comes first.)
    # Not a URL (redis-cli -u redis://user:pw@host): its password is url-credentials'.
    _pattern(
        "password",
        rf"""(?:^|(?<=\s))(?:-[uU]|--(?:proxy-)?user)(?:{_BLANK}++|=)?+"""
        # The whole argument quoted ('bob:a b'), the password quoted (bob:"a b"), or bare.
        r"""(?:'[^\s:"'/]*:(?!//)([^']+)'|"[^\s:"'/]*:(?!//)([^"]+)"|[^\s:"'/]*:(?!//)"""
        r"""(?:"([^"]+)"(?![^\s;&|<>()])|'([^']+)'(?![^\s;&|<>()])"""
        r"""|((?:"[^"]*"|'[^']*'|[^\s"'\\]|\\.)+)))""",
        ("-u",),
    ),
    # An OAuth authorization code: a query parameter (?code= &code= #code=), the first
    # parameter of a form body (code=...&...), or the value of curl's -d/--data/-F.
    # Not status_code=, not "exit code=1".
    _pattern(
        "secret",
        r"(?:[?&#]code=(" + _PARAMETER + r")"
        r"|(?:^|(?<=[\s\"'=]))code=(" + _PARAMETER + r")(?=&)"
        r"""|(?:^|(?<=\s))(?:-[dF](?:[ \t]+|=)?"""
        r"""|(?:--data(?:-[a-z]+)?|--form(?:-string)?)(?:[ \t]+|=))["']?"""
        r"code=(" + _PARAMETER + r"))",
        ("code=",),
        ignore_case=True,
    ),
    # A proxy's password given without a scheme: --proxy USER:PASSWORD@HOST (curl's, pip's;
    # curl's -x is read among its options above).
    _pattern(
        "password",
        rf"(?:^|(?<=\s))--(?:pre)?proxy(?:=|{_BLANK}++){_PROXY_PASSWORD}",
        ("proxy",),
    ),
    # ... and in a proxy variable's assignment, HTTPS_PROXY=USER:PASSWORD@HOST (http_proxy,
    # FTP_PROXY, ALL_PROXY, any case; with a scheme it is a URL's). Only a word's start
    # begins it, so the name repeated in one word is read once.
    _pattern(
        "password",
        rf"""(?:^|(?<=[\s"'`;&|(]))(?i:(?:https?|ftp|all)_proxy)={_PROXY_PASSWORD}""",
        ("_proxy=",),
    ),
    # aws configure set NAME VALUE (and npm's, yarn's, pnpm's, kubectl's config set): a
    # setting named as a secret (aws_secret_access_key, //registry.npmjs.org/:_authToken,
    # aws_session_token, profile.dev.aws_secret_access_key), after set's options.
    _pattern(
        "secret",
        # An option's name starts with a letter or digit: "--a" is read one way only (as
        # "-" and "-a" too, a run of options took exponential time).
        rf"(?:^|(?<=\s))config(?:ure)?{_BLANK}+set"
        rf"(?:{_BLANK}+--?[A-Za-z0-9][A-Za-z0-9-]*+(?:{_BLANK}+[^\s-]\S*+)?)*?"
        rf"""{_BLANK}+(?!-)(?:{_SETTING_NAME}|"{_SETTING_NAME}"|'{_SETTING_NAME}'){_BLANK}++{_VALUE}""",
        ("config",),
        ignore_case=True,
    ),
    # git -c http.extraheader="X-Auth: tok", git config http.extraheader 'X-Auth: tok':
    # the header's value, to the end of the quoted word or to the end of a bare one. A
    # quote never closed runs to the end of the text (so each opener is scanned once).
    _pattern(
        "secret",
        rf"""'{_EXTRA_HEADER}={_HEADER_NAME}([^']+)(?:'{_WORD_ENDS}|\Z)"""
        rf"""|"{_EXTRA_HEADER}={_HEADER_NAME}({_IN_DOUBLE})(?:"{_WORD_ENDS}|\Z)"""
        rf"""|{_EXTRA_HEADER}(?:=|{_BLANK}++)(?:'{_HEADER_NAME}([^']+)(?:'{_WORD_ENDS}|\Z)"""
        rf"""|"{_HEADER_NAME}({_IN_DOUBLE})(?:"{_WORD_ENDS}|\Z)"""
        rf"""|\\"{_HEADER_NAME}((?:[^"\\]|\\[^"])+)(?:\\"|\Z)"""
        # A word of several pieces ('a'\''b', $'...', a\ b): whole.
        rf"""|{_HEADER_NAME}((?:'[^']*'|"{_IN_DOUBLE}"|[^\s"'\\;&|<>]|\\[^"])+))""",
        ("extraheader",),
        ignore_case=True,
    ),
    # sshpass -e reads its password from SSHPASS (the name as the environment has it).
    _pattern("password", rf"(?<![\w-])SSHPASS{_AFTER_NAME}\s*=\s*{_VALUE}", ("sshpass",)),
    # redis-cli reads its password from REDISCLI_AUTH.
    _pattern(
        "password",
        rf"\brediscli_auth\b{_AFTER_NAME}\s*[:=]\s*{_VALUE}",
        ("rediscli_auth",),
        ignore_case=True,
    ),
    # mysql's (and mariadb's) -pPASSWORD, glued; elsewhere -p is a port or a path, so
    # it applies only to a string that names one of them.
    _pattern(
        "password",
        # One quoted piece (-p'a b': the tag of what is inside), or a word of several
        # (-p$'a b;c', -pa"b c"), as the shell reads it.
        rf"""(?:^|(?<=\s))-p(?:'([^']*)'{_WORD_ENDS}|"({_IN_DOUBLE})"{_WORD_ENDS}"""
        rf"""|((?:'[^']*'|"{_IN_DOUBLE}"|[^\s\\]|\\.)++))""",
        ("mysql", "mariadb"),
        named_program=True,
    ),
    *_stdin_patterns("password", _STDIN_PASSWORD, ("-stdin", "chpasswd")),
    *_stdin_patterns("secret", _STDIN_SECRET, ("-stdin", "--with-token")),
    *_stdin_patterns("secret", _STDIN_STORE, ("data-file", "secret", "login")),
    *_stdin_patterns("password", _SUDO_STDIN, ("sudo",)),
    _pattern("password", _SQL_PASSWORD, ("password", "identified"), ignore_case=True),
]


def compile_all() -> int:
    """Compile every precise pattern now (they compile on first use); return how many
    regexes that is. A pattern that does not compile raises ``re.error`` here."""
    compiled = [pattern for secret in _PATTERNS for pattern in (secret.regex, secret.values)]
    return sum(pattern is not None for pattern in compiled)


_OPTION = re.compile(rf"(?:({_PASSWORD_OPTION})|{_SECRET_OPTION})", _FLAGS | re.IGNORECASE)


@functools.lru_cache(maxsize=4096)
def option_kind(argument: str) -> str | None:
    """The redaction kind of the argument after ``argument`` in an argv list, or None.

    ``["mysql", "--password", "pw"]``: the item after a secret-naming option is its value.
    """
    match = _OPTION.fullmatch(argument)
    if match is None:
        return None
    return "password" if match.group(1) is not None else "secret"


# A plain name before an argv item's first '=' (PGPASSWORD, db.password, api_token).
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_.-]+", _FLAGS)


@functools.lru_cache(maxsize=4096)
def assignment_kind(name: str) -> str | None:
    """The redaction kind of ``VALUE`` in an argv item ``name=VALUE``, or None.

    The item is one shell word, so its whole ``VALUE`` is the secret, whatever it holds
    (``PGPASSWORD=a;b"c``, ``password=pw1,pw2``): the text patterns, which cannot tell
    where a word ends in free text, stop a bare value at such characters. ``name`` names
    a secret when a text pattern reads ``name=x`` as assigning one.
    """
    if _PLAIN_NAME.fullmatch(name) is None:
        return None
    probe = name + "=x"
    lowered = probe.lower()
    for secret in _PATTERNS:
        if secret.named_program or secret.has_values:
            continue
        if not any(literal in lowered for literal in secret.literals):
            continue
        match = secret.regex.search(probe)
        if match is not None and match.lastindex and match.start(match.lastindex) == len(probe) - 1:
            return secret.kind
    return None


# git's http.extraheader setting as a list item, and a header as its value: the name
# (kept, with its colon and blanks) and the rest.
_EXTRA_HEADER_SETTING = re.compile(r"http\.(?:[^\s=]*?\.)?extraheader", _FLAGS | re.IGNORECASE)
_HEADER_VALUE = re.compile(rf"(?P<name>{_HEADER_NAME})(?P<value>[\s\S]*\S[\s\S]*)", _FLAGS)
# An argv item "name: value" on one line: YAML's form of an assignment.
_YAML_LINE = re.compile(r"(?P<head>(?P<name>[^\s:=]+)[ \t]*:[ \t]*)(?P<value>[^\r\n]*\S)", _FLAGS)
_YAML_KINDS = frozenset({"password", "secret"})
# curl: the next item is user:password (-U, --proxy-user: the proxy's)
_USER_OPTIONS = frozenset({"-u", "--user", "-U", "--proxy-user"})
# curl's options whose value is a form body: "code=..." there is an OAuth code (with
# '&' in it, the text pattern finds it).
_DATA_OPTIONS = frozenset(
    {"-d", "--data", "--data-raw", "--data-binary", "--data-urlencode", "--data-ascii"}
    | {"-F", "--form", "--form-string"}
)
_MYSQL = re.compile(r"(?:mysql|mariadb)[\w.-]*", _FLAGS)
# Its value is KEY=VALUE, VALUE a secret, in any list (only kubectl, oc, kustomize have it).
_FROM_LITERAL = "--from-literal"

# (kind, text kept before the tag, secret) for an argv item that is or ends in a secret.
Found = tuple[str, str, str]
# A string's redacted form, and the secrets replaced in it, with their kinds.
Rewritten = tuple[str, dict[str, str]]


def _is_str(items: Sequence[Any], index: int) -> bool:
    return index < len(items) and type(items[index]) is str


def _is_word(items: Sequence[Any], index: int, word: str) -> bool:
    return index < len(items) and items[index] == word


# A program's scan of the items after its name: records the secrets it finds in
# ``found`` and returns the index of the last item it read, len(items) if it read to
# the end of the list (or its start, to be run again from every later naming of the
# program). A naming of the program before that index is one of this run's arguments
# and starts no run of its own: each list is read once from left to right (a scan
# rerun from every naming, to the end of the list, made a list naming the program
# thousands of times take seconds on the event loop). One at that index, read as the
# secret (cargo login cargo login TOKEN), starts its own.
Scan = Callable[[Sequence[Any], int, dict[int, Found]], int]


def _value_at(items: Sequence[Any], index: int, found: dict[int, Found]) -> None:
    """Item ``index``, a string or an integer, is a password (if there is one)."""
    if index < len(items) and type(items[index]) in (str, int):
        found[index] = ("password", "", str(items[index]))


def _glued(items: Sequence[Any], index: int, option: str, found: dict[int, Found]) -> bool:
    """``option`` and its value: as two items (``-p``, ``pw``), glued (``-ppw``) or
    joined by '=' (``-p=pw``). Returns whether item ``index`` is that option."""
    item = items[index]
    if type(item) is not str or not item.startswith(option):
        return False
    if item == option:
        _value_at(items, index + 1, found)
    elif item.startswith(option + "="):
        found[index] = ("password", option + "=", item[len(option) + 1 :])
    else:
        found[index] = ("password", option, item[len(option) :])
    return True


def _scan_sshpass(items: Sequence[Any], start: int, found: dict[int, Found]) -> int:
    # Only sshpass's own options, before the command it runs (ssh -p PORT is a port);
    # flags may come first in the same cluster (-vp pw, -vppw).
    index = start
    while _is_str(items, index) and items[index].startswith("-") and items[index] != "--":
        flags = re.match(r"-[evhV]*", items[index], _FLAGS)
        assert flags is not None
        if _glued(items, index, flags.group() + "p", found):
            return start
        index += 2 if re.fullmatch(r"-[evhV]*[fdP]", items[index], _FLAGS) else 1
    return start


def _scan_option(*options: str, prompts: bool = False) -> Scan:
    """A scan for a program whose ``options`` take a password as the next item; with
    ``prompts`` (the programs of ``_OWN_PASSWORD_OPTIONS``), one followed by another
    option takes none (it asks for it), and a short option's value may be glued on."""

    def scan(items: Sequence[Any], start: int, found: dict[int, Found]) -> int:
        for index in range(start, len(items)):
            item = items[index]
            if item in options:
                following = items[index + 1] if index + 1 < len(items) else None
                if prompts and type(following) is str and following.startswith("-"):
                    continue
                _value_at(items, index + 1, found)
            elif prompts and type(item) is str and len(item) > 2 and item[:2] in options:
                found[index] = ("password", item[:2], item[2:])  # glued: -Ppw
        return len(items)

    return scan


def _scan_mysql(items: Sequence[Any], start: int, found: dict[int, Found]) -> int:
    # mysql -ppw; a lone -p prompts, and the next item is the database.
    for index in range(start, len(items)):
        item = items[index]
        if type(item) is str and item.startswith("-p") and len(item) > 2:
            found[index] = ("password", "-p", item[2:])
    return len(items)


# More items of global options than a container CLI has (docker has about a dozen):
# past this many the rest is searched for -p as if it followed login, which hides too
# much rather than too little, and keeps a list of thousands of options linear.
_MOST_GLOBAL_OPTION_ITEMS = 64


def _scan_login(items: Sequence[Any], start: int, found: dict[int, Found]) -> int:
    # docker [global options] login ... -p pw: the subcommand must be login.
    index = start
    while _is_str(items, index) and items[index].startswith("-"):
        if index - start > _MOST_GLOBAL_OPTION_ITEMS:
            break  # no real command line has this many: read the rest as login's options
        argument = index + 1  # perhaps the option's argument (docker --config DIR login)
        if (
            "=" not in items[index]
            and _is_str(items, argument)
            and items[argument][:1] != "-"
            and items[argument] != "login"
        ):
            index = argument + 1  # --config DIR, --log-level info ...
        else:
            index += 1
    if _is_word(items, index, "login"):
        index += 1
    elif index - start <= _MOST_GLOBAL_OPTION_ITEMS:
        return start
    # The first "login" after the program, wherever it stands, ends its options: a
    # later run of the program that reaches one reaches this one and its same tail.
    for option in range(index, len(items)):
        _glued(items, option, "-p", found)
    return len(items)


def _scan_htpasswd(items: Sequence[Any], start: int, found: dict[int, Found]) -> int:
    # htpasswd -b [-c] file user password; with -n, user password.
    index, flags = start, ""
    while _is_str(items, index) and items[index].startswith("-"):
        flags += items[index]
        index += 2 if re.fullmatch(r"-[A-Za-z]*C", items[index], _FLAGS) else 1
    if "b" in flags:
        _value_at(items, index + (1 if "n" in flags else 2), found)
    return start


def _assigned(item: str, kept: str) -> Found | None:
    """``item`` as KEY=VALUE: its VALUE is a secret, ``kept`` and KEY= are kept. A KEY
    that is no plain name (Kubernetes' keys and variables are letters, digits and
    ``-._``) goes with the value: the item is replaced whole, and a secret in its KEY
    (``$'k'``, ``https://u:pw@h``) would be kept in clear."""
    if "=" not in item:
        return None
    key = _PLAIN_KEY.match(item)
    if key is None:
        return ("secret", kept, item)
    return ("secret", kept + key.group(), item[key.end() :])


# kubectl's options whose value is NAME=VALUE, and the items after which a NAME=VALUE is
# no variable of set env: such an option's value, a selector (app=web), an output
# (jsonpath=...).
_KUBECTL_ENV_OPTIONS = frozenset(_KUBECTL_ENV_OPTION.split("|"))
_KUBECTL_NO_VARIABLE = _KUBECTL_ENV_OPTIONS | {"-l", "--selector", "-o", "--output"}
_ENV_ASSIGNMENT = re.compile(rf"{_ENV_NAME}=", _FLAGS)
# A plain key; a tag in it is one placed before (a record redacted again).
_PLAIN_KEY = re.compile(r"(?:[-._A-Za-z0-9]|\[REDACTED:[a-z-]+:[0-9a-f]{8}\])+=", _FLAGS)


def _scan_kubectl(items: Sequence[Any], start: int, found: dict[int, Found]) -> int:
    # kubectl run --env NAME=VALUE (--env=NAME=VALUE), set env -e NAME=VALUE, and every
    # NAME=VALUE after set env; oc's the same. A patch of a Secret's data: the whole patch.
    set_env = False
    patch_secret = _patches_a_secret(items, start)
    previous: Any = None
    for index in range(start, len(items)):
        item = items[index]
        if type(item) is str:
            option, sign, value = item.partition("=")
            assigned = None
            if patch_secret and item in _KUBECTL_PATCH_OPTIONS and _is_str(items, index + 1):
                if _SECRET_DATA_FIELD.search(items[index + 1]):
                    found[index + 1] = ("secret", "", items[index + 1])
            elif (
                patch_secret
                and sign
                and option in _KUBECTL_PATCH_OPTIONS
                and _SECRET_DATA_FIELD.search(value)
            ):
                found[index] = ("secret", option + "=", value)
            elif item in _KUBECTL_ENV_OPTIONS and _is_str(items, index + 1):
                assigned = _assigned(items[index + 1], "")
                if assigned is not None:
                    found[index + 1] = assigned
            elif sign and option in _KUBECTL_ENV_OPTIONS:
                assigned = _assigned(value, option + "=")
                if assigned is not None:
                    found[index] = assigned
            elif (
                set_env
                and _ENV_ASSIGNMENT.match(item) is not None
                and not (type(previous) is str and previous in _KUBECTL_NO_VARIABLE)
            ):
                found[index] = ("secret", option + "=", value)
            elif item == "set" and _is_word(items, index + 1, "env"):
                set_env = True
        previous = item
    return len(items)


_KUBECTL_PATCH_OPTIONS = frozenset({"-p", "--patch"})
_SECRET_DATA_FIELD = re.compile(r"\b(?:data|stringData)\b")


def _patches_a_secret(items: Sequence[Any], start: int) -> bool:
    """Whether the kubectl command from ``start`` is ``patch secret NAME`` (``secrets``,
    ``secret/NAME``; an option's value may stand between: ``patch -n prod secret``)."""
    words = [item for item in items[start:] if type(item) is str and item[:1] != "-"]
    if "patch" not in words:
        return False
    after = words.index("patch") + 1
    return any(word.partition("/")[0] in ("secret", "secrets") for word in words[after : after + 3])


_SETTING = re.compile(_SETTING_NAME, _FLAGS | re.IGNORECASE)
# aws's options that take no value (besides every --no-...).
_AWS_FLAGS = frozenset({"--debug", "--cli-auto-prompt"})


def _scan_configure_set(items: Sequence[Any], start: int, found: dict[int, Found]) -> int:
    # aws configure set [options] NAME VALUE: VALUE is a secret when NAME names one.
    if not _is_word(items, start, "set"):
        return start
    index = start + 1
    while _is_str(items, index) and items[index].startswith("-"):
        if index - start > _MOST_GLOBAL_OPTION_ITEMS:
            return start
        option = items[index]
        takes_value = "=" not in option and option not in _AWS_FLAGS
        index += 2 if takes_value and not option.startswith("--no-") else 1
    value = index + 1
    if (
        _is_str(items, index)
        and _SETTING.fullmatch(items[index]) is not None
        and value < len(items)
        and type(items[value]) in (str, int)
    ):
        found[value] = ("secret", "", str(items[value]))
    return start


_SAMBA_USER_OPTIONS = frozenset({"-U", "--user", "--username"})


def _scan_samba(items: Sequence[Any], start: int, found: dict[int, Found]) -> int:
    # -U user%pw (-Uuser%pw, --user=user%pw, --username user%pw): the part after the '%'.
    for index in range(start, len(items)):
        item = items[index]
        if type(item) is not str:
            continue
        at, user = index, ""
        if item in _SAMBA_USER_OPTIONS and _is_str(items, index + 1):
            at, user = index + 1, items[index + 1]
        elif item.startswith("-U") or item.partition("=")[0] in _SAMBA_USER_OPTIONS:
            user = item
        name, percent, password = user.partition("%")
        if percent and password:
            found[at] = ("password", name + "%", password)
    return len(items)


def _scan_smbclient(items: Sequence[Any], start: int, found: dict[int, Found]) -> int:
    # smbclient //host/share pw: the word after the service, when no option.
    for index in range(start, len(items) - 1):
        item, following = items[index], items[index + 1]
        if type(item) is str and item.startswith("//") and type(following) in (str, int):
            if not str(following).startswith("-"):
                _value_at(items, index + 1, found)
            break
    return _scan_samba(items, start, found)


def _scan_redis(items: Sequence[Any], start: int, found: dict[int, Found]) -> int:
    # -a pw; AUTH [user] pw (of two words, the second); CONFIG SET requirepass pw; ACL
    # SETUSER's >pw.
    for index in range(start, len(items)):
        item = items[index]
        if type(item) is not str:
            continue
        if item == "-a":
            _value_at(items, index + 1, found)
        elif item.lower() == "auth" and index + 1 < len(items):
            second = index + 2 < len(items) and not _is_redirection(items[index + 2])
            _value_at(items, index + 2 if second else index + 1, found)
        elif item[:1] == ">" and len(item) > 1:
            found[index] = ("password", ">", item[1:])  # ACL SETUSER bob on >pw
        elif (
            item.lower() == "config"
            and _is_str(items, index + 2)
            and str(items[index + 1]).lower() == "set"
            and items[index + 2].lower() in ("requirepass", "masterauth")
        ):
            _value_at(items, index + 3, found)
    return len(items)


def _is_redirection(item: Any) -> bool:
    return type(item) is str and re.match(r"[0-9]*[<>]", item) is not None


def _positional_indexes(
    items: Sequence[Any], start: int, value_options: frozenset[str]
) -> Iterator[int]:
    """The indexes of the items from ``start`` that are no option nor an option's value
    (``value_options`` take the next item unless written ``--option=value``), read only
    as far as they are asked for."""
    index = start
    while index < len(items):
        item = items[index]
        if type(item) is str and item.startswith("-") and item != "-":
            index += 2 if item in value_options else 1
            continue
        yield index
        index += 1


def _positionals(
    items: Sequence[Any], start: int, value_options: frozenset[str], count: int
) -> tuple[list[int], int]:
    """The first ``count`` positionals from ``start`` (``_positional_indexes``), and the
    index of the last item read: the last of them, or the end of the list when there
    are fewer."""
    indexes = list(itertools.islice(_positional_indexes(items, start, value_options), count))
    return indexes, indexes[-1] if len(indexes) == count else len(items)


_RABBITMQ_COMMANDS = frozenset({"add_user", "change_password", "authenticate_user"})


def _scan_rabbitmqctl(items: Sequence[Any], start: int, found: dict[int, Found]) -> int:
    # rabbitmqctl add_user USER PW: the second positional after the command.
    for index in range(start, len(items)):
        if items[index] in _RABBITMQ_COMMANDS:
            positionals, read = _positionals(items, index + 1, frozenset(), 2)
            if len(positionals) > 1:
                _value_at(items, positionals[1], found)
            return read
    return len(items)


_CF_AUTH_VALUE_OPTIONS = frozenset({"--origin"})


def _scan_cf_auth(items: Sequence[Any], start: int, found: dict[int, Found]) -> int:
    # cf auth USERNAME PASSWORD: the second positional after auth, cf's first.
    command, read = _positionals(items, start, frozenset(), 1)
    if not command or not _is_word(items, command[0], "auth"):
        return read
    positionals, read = _positionals(items, command[0] + 1, _CF_AUTH_VALUE_OPTIONS, 2)
    if len(positionals) > 1:
        _value_at(items, positionals[1], found)
    return read


_MC_VALUE_OPTIONS = frozenset({"--api", "-api", "--path", "-path", "--lookup", "-lookup"})


def _scan_mc(items: Sequence[Any], start: int, found: dict[int, Found]) -> int:
    # mc alias set NAME URL ACCESS SECRET (mc config host add ...): the fourth positional.
    for index in range(start, len(items)):
        if _is_word(items, index, "alias") and _is_word(items, index + 1, "set"):
            first = index + 2
        elif _is_word(items, index, "config") and items[index + 1 : index + 3] == ["host", "add"]:
            first = index + 3
        else:
            continue
        positionals, read = _positionals(items, first, _MC_VALUE_OPTIONS, 4)
        if len(positionals) > 3:
            found[positionals[3]] = ("secret", "", str(items[positionals[3]]))
        return read
    return len(items)


_VAULT_VALUE_OPTIONS = frozenset(
    f"{dashes}{flag}" for flag in _VAULT_VALUE_FLAGS.split("|") for dashes in ("-", "--")
)


def _scan_vault(items: Sequence[Any], start: int, found: dict[int, Found]) -> int:
    # vault login [flags] TOKEN: the first positional, unless it assigns (KEY=VALUE).
    for index in range(start, len(items)):
        if _is_word(items, index, "login"):
            positionals, read = _positionals(items, index + 1, _VAULT_VALUE_OPTIONS, 1)
            if positionals:
                token = items[positionals[0]]
                # "-" reads the token from standard input.
                if type(token) is int or (type(token) is str and token != "-" and "=" not in token):
                    found[positionals[0]] = ("secret", "", str(token))
            return read
    return len(items)


_RCLONE_VALUE_OPTIONS = frozenset(
    f"{dashes}{flag}" for flag in _RCLONE_VALUE_FLAGS.split("|") for dashes in ("-", "--")
)


def _scan_rclone(items: Sequence[Any], start: int, found: dict[int, Found]) -> int:
    # rclone config create NAME TYPE [KEY VALUE]...: the VALUE of a KEY naming a secret.
    for index in range(start, len(items)):
        if not _is_word(items, index, "config"):
            continue
        positionals = _positional_indexes(items, index + 1, _RCLONE_VALUE_OPTIONS)
        command = next(positionals, None)
        if command is None:
            return len(items)
        if items[command] not in ("create", "update", "password"):
            return command
        named = 3 if items[command] == "create" else 2
        rest = list(positionals)[named - 1 :]
        while rest:
            key = items[rest[0]]
            if type(key) is str and "=" in key:
                # A word KEY=VALUE, tagged as the command line's pattern tags it.
                name, _, value = key.partition("=")
                if _RCLONE_SECRET_KEY.fullmatch(name) and value:
                    found[rest[0]] = ("secret", name + "=", value)
                rest = rest[1:]
                continue
            if len(rest) > 1 and type(key) is str and _RCLONE_SECRET_KEY.fullmatch(key):
                value_item = items[rest[1]]
                if type(value_item) in (str, int):
                    found[rest[1]] = ("secret", "", str(value_item))
            rest = rest[2:]
        return len(items)
    return len(items)


_CURL_CERT_OPTIONS = frozenset({"-E", "--cert", "--proxy-cert"})
_CURL_COOKIE_OPTIONS = frozenset({"-b", "--cookie"})
# -b after curl's flags in one cluster (-sb, -sSbNAME=VALUE): the cluster, then its value.
_CURL_COOKIE_CLUSTER = re.compile(rf"(-{_CURL_FLAGS}{{1,16}}b)(.*)", _FLAGS | re.DOTALL)
# A proxy's options (curl's -x besides): USER:PASSWORD@HOST without a scheme.
_PROXY_OPTIONS = frozenset({"--proxy", "--preproxy"})
_CREDS_OPTIONS = frozenset({"--creds", "--src-creds", "--dest-creds"})


def _option_value(
    items: Sequence[Any], index: int, options: frozenset[str], glued: str = ""
) -> tuple[int, str, str] | None:
    """The value of one of ``options`` at item ``index``, as (the index of the item
    holding it, the text of that item kept before it, the value): the next item, the
    text after '=' (``--cookie=v``), or after a short option ``glued`` (``-bv``)."""
    item = items[index]
    if type(item) is not str:
        return None
    if item in options:
        return (index + 1, "", items[index + 1]) if _is_str(items, index + 1) else None
    option, sign, value = item.partition("=")
    if sign and option in options:
        return index, option + "=", value
    if glued and item.startswith(glued) and item[len(glued) : len(glued) + 1] not in ("", "-"):
        return index, glued, item[len(glued) :]
    return None


def _proxy_password(items: Sequence[Any], index: int, glued: str, found: dict[int, Found]) -> None:
    """A proxy's password at item ``index`` (``--proxy``, or ``glued``: curl's ``-x``),
    USER:PASSWORD@HOST[:PORT] without a scheme: the text to the last '@' (the host after
    it stays, see ``Redactor._value``)."""
    options = _PROXY_OPTIONS | {glued} if glued else _PROXY_OPTIONS
    value = _option_value(items, index, options, glued)
    if value is None:
        return
    at, head, proxy = value
    user, colon, rest = proxy.partition(":")
    password, sign, _ = rest.rpartition("@")
    if colon and sign and password and not rest.startswith("//") and "/" not in user:
        found[at] = ("password", head + user + ":", password)


def _scan_curl(items: Sequence[Any], start: int, found: dict[int, Found]) -> int:
    # curl --cert FILE:PASSPHRASE (-E, --proxy-cert, --cert=...): the part after the ':';
    # -b/--cookie NAME=VALUE (a file's name has no '='); -x USER:PASSWORD@HOST.
    for index in range(start, len(items)):
        if (cert := _option_value(items, index, _CURL_CERT_OPTIONS)) is not None:
            at, head, value = cert
            file, colon, passphrase = value.partition(":")
            if colon and passphrase:
                found[at] = ("password", head + file + ":", passphrase)
        elif (cookie := _curl_cookie(items, index)) is not None:
            at, head, value = cookie
            if "=" in value:
                found[at] = ("cookie", head, value)
        else:
            _proxy_password(items, index, "-x", found)
    return len(items)


def _curl_cookie(items: Sequence[Any], index: int) -> tuple[int, str, str] | None:
    """curl's cookie at item ``index`` (``_option_value``): -b or --cookie, or -b ending a
    cluster of flags (``-sb`` and the next item, ``-sbNAME=VALUE``)."""
    cookie = _option_value(items, index, _CURL_COOKIE_OPTIONS, "-b")
    item = items[index]
    if cookie is not None or type(item) is not str:
        return cookie
    cluster = _CURL_COOKIE_CLUSTER.fullmatch(item)
    if cluster is None:
        return None
    flags, glued = cluster.groups()
    if not glued:
        return (index + 1, "", items[index + 1]) if _is_str(items, index + 1) else None
    return None if glued.startswith("-") else (index, flags, glued)


def _scan_pip(items: Sequence[Any], start: int, found: dict[int, Found]) -> int:
    # pip's --proxy USER:PASSWORD@HOST.
    for index in range(start, len(items)):
        _proxy_password(items, index, "", found)
    return len(items)


def _scan_creds(items: Sequence[Any], start: int, found: dict[int, Found]) -> int:
    # skopeo's, buildah's and podman's --creds USER:PASSWORD (--src-creds, --dest-creds).
    for index in range(start, len(items)):
        if (creds := _option_value(items, index, _CREDS_OPTIONS)) is not None:
            at, head, value = creds
            user, colon, password = value.partition(":")
            if colon and password:
                found[at] = ("password", head + user + ":", password)
    return len(items)


def _scan_gh(items: Sequence[Any], start: int, found: dict[int, Found]) -> int:
    # gh secret set NAME --body VALUE: the value, as two items, glued (-bVALUE) or joined.
    for index in range(start, len(items)):
        if not (_is_word(items, index, "secret") and _is_word(items, index + 1, "set")):
            continue
        for at in range(index + 2, len(items)):
            item = items[at]
            if item in ("-b", "--body"):
                if _is_str(items, at + 1):
                    found[at + 1] = ("secret", "", items[at + 1])
            elif type(item) is str and item.startswith("--body="):
                found[at] = ("secret", "--body=", item[len("--body=") :])
            elif type(item) is str and item.startswith("-b") and item[2:3] not in ("", "-"):
                found[at] = ("secret", "-b", item[2:])
        return len(items)
    return len(items)


def _scan_short_option(option: str, kind: str) -> Scan:
    """A scan for a program whose short ``option`` carries a secret of ``kind`` anywhere in
    its arguments: the next item, glued (``-tTOKEN``) or after '=' (``-t=TOKEN``)."""
    options = frozenset({option})

    def scan(items: Sequence[Any], start: int, found: dict[int, Found]) -> int:
        for index in range(start, len(items)):
            if (value := _option_value(items, index, options, option)) is not None:
                at, head, secret = value
                if head or secret[:1] != "-":
                    found[at] = (kind, head, secret)
        return len(items)

    return scan


_scan_httpie_auth = _scan_short_option("-a", "secret")
_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=", _FLAGS)


def _httpie_index(items: Sequence[Any]) -> int | None:
    """The index of the item of a list that runs HTTPie, or None: its first item, or the
    first after wrappers (``sudo``, ``env X=1``, ``timeout 10``), their options and a short
    option's value (``sudo -u bob``); a path only as ``.../bin/http``. Anywhere else its
    names are ordinary words: ``find /srv/http -atime -1``, ``git add src/http``."""
    value_may_follow = False
    for index, item in enumerate(items):
        if type(item) is not str:
            return None
        head, _, name = item.rpartition("/")
        if name in _HTTPIE and (item == name or head == "bin" or head.endswith("/bin")):
            return index
        if _WRAPPER.fullmatch(name) or _ASSIGNMENT.match(item):
            value_may_follow = False
        elif index and item[:1] == "-":
            value_may_follow = len(item) == 2
        elif index and (value_may_follow or item[:1].isdigit()):
            value_may_follow = False
        else:
            return None
    return None


def _scan_after_words(words: tuple[str, ...], option: str, kind: str) -> Scan:
    """A scan for a program whose subcommand (``words`` in a row; the last one may be any
    of ``|``-separated names) takes a secret of ``kind`` after ``option``, as the next
    item or glued on (``dotnet nuget push -k KEY``, ``security add-generic-password -w
    PW``)."""
    *leading, last = words
    lasts = frozenset(last.split("|"))

    def scan(items: Sequence[Any], start: int, found: dict[int, Found]) -> int:
        for index in range(start, len(items) - len(leading)):
            if not all(_is_word(items, index + n, word) for n, word in enumerate(leading)):
                continue
            if not (_is_str(items, index + len(leading)) and items[index + len(leading)] in lasts):
                continue
            for at in range(index + len(words), len(items)):
                item = items[at]
                if item == option and _is_str(items, at + 1) and items[at + 1][:1] != "-":
                    found[at + 1] = (kind, "", items[at + 1])
                elif type(item) is str and item.startswith(option) and item != option:
                    found[at] = (kind, option, item[len(option) :])
            break
        return len(items)

    return scan


def _scan_lftp(items: Sequence[Any], start: int, found: dict[int, Found]) -> int:
    # lftp -u USER,PASSWORD: the part after the first ','.
    for index in range(start, len(items) - 1):
        if items[index] == "-u" and _is_str(items, index + 1):
            user, comma, password = items[index + 1].partition(",")
            if comma and password:
                found[index + 1] = ("password", user + ",", password)
    return len(items)


def _scan_archiver(items: Sequence[Any], start: int, found: dict[int, Found]) -> int:
    # 7z's and rar's -pPASSWORD, glued; a lone -p asks for it, rar's -p- for none.
    for index in range(start, len(items)):
        item = items[index]
        if type(item) is str and item.startswith("-p") and item not in ("-p", "-p-"):
            found[index] = ("password", "-p", item[2:])
    return len(items)


def _scan_after_subcommand(subcommands: tuple[str, ...]) -> Scan:
    """A scan for a program whose ``subcommands`` take a password after ``-p`` (``-ppw``,
    ``-p=pw``), as docker login does (``_SUBCOMMAND_PASSWORD_OPTIONS``)."""

    def scan(items: Sequence[Any], start: int, found: dict[int, Found]) -> int:
        for index in range(start, len(items)):
            if items[index] in subcommands:
                for option in range(index + 1, len(items)):
                    _glued(items, option, "-p", found)
                break
        return len(items)

    return scan


def _scan_store_value(subcommand: tuple[str, ...]) -> Scan:
    """A scan for a secret store's ``subcommand`` (its words in a row: ssm put-parameter),
    whose ``--value`` is the secret it keeps."""

    def scan(items: Sequence[Any], start: int, found: dict[int, Found]) -> int:
        for index in range(start, len(items)):
            if all(_is_word(items, index + n, word) for n, word in enumerate(subcommand)):
                for option in range(index + len(subcommand), len(items)):
                    value = _option_value(items, option, frozenset({"--value"}))
                    if value is not None:
                        at, head, secret = value
                        found[at] = ("secret", head, secret)
                break
        return len(items)

    return scan


def _scan_poetry_config(items: Sequence[Any], start: int, found: dict[int, Found]) -> int:
    # poetry config pypi-token.NAME TOKEN, http-basic.NAME USER PASSWORD.
    for index in range(start, len(items)):
        if _is_word(items, index, "config"):
            positionals, read = _positionals(items, index + 1, frozenset(), 1)
            setting = items[positionals[0]] if positionals else None
            if type(setting) is str and setting.startswith("pypi-token."):
                values, read = _positionals(items, read + 1, frozenset(), 1)
                if values and type(items[values[0]]) in (str, int):
                    found[values[0]] = ("secret", "", str(items[values[0]]))
            elif type(setting) is str and setting.startswith("http-basic."):
                values, read = _positionals(items, read + 1, frozenset(), 2)
                if len(values) > 1:
                    _value_at(items, values[1], found)
            return read
    return len(items)


_CARGO_VALUE_OPTIONS = frozenset(
    f"{dashes}{flag}" for flag in _CARGO_VALUE_FLAGS.split("|") for dashes in ("-", "--")
)


def _scan_cargo(items: Sequence[Any], start: int, found: dict[int, Found]) -> int:
    # cargo [options] login [options] TOKEN: the first positional after login.
    positionals = _positional_indexes(items, start, _CARGO_VALUE_OPTIONS)
    word = next((index for index in positionals if not str(items[index]).startswith("+")), None)
    if word is None:
        return len(items)
    if not _is_word(items, word, "login"):
        return word
    token, read = _positionals(items, word + 1, _CARGO_VALUE_OPTIONS, 1)
    if token and type(items[token[0]]) in (str, int):
        found[token[0]] = ("secret", "", str(items[token[0]]))
    return read


# The programs whose own options carry a password, by the name they are run as; a
# program with several ways to carry a secret (az login -p, az keyvault secret set
# --value) has several scans, each resumed where it stopped reading.
_PROGRAM_SCANS: dict[str, Scan | tuple[Scan, ...]] = {
    "sshpass": _scan_sshpass,
    **dict.fromkeys(("redis-cli", "valkey-cli", "keydb-cli"), _scan_redis),
    **dict.fromkeys(_SAMBA_CLIENTS, _scan_samba),
    "smbclient": _scan_smbclient,
    "rabbitmqctl": _scan_rabbitmqctl,
    **dict.fromkeys(("mc", "mcli"), _scan_mc),
    **dict.fromkeys(("vault", "bao"), _scan_vault),
    **dict.fromkeys(_ARCHIVERS, _scan_archiver),
    "rclone": _scan_rclone,
    "gh": _scan_gh,
    "curl": _scan_curl,
    **dict.fromkeys(("pip", "pip3"), _scan_pip),
    "keytool": _scan_option("-new"),
    "htpasswd": _scan_htpasswd,
    "openssl": _scan_option("-k", "-K"),
    **{
        program: _scan_option(*options, prompts=True)
        for program, options in _OWN_PASSWORD_OPTIONS.items()
    },
    **dict.fromkeys(("docker", "nerdctl"), _scan_login),
    **dict.fromkeys(("podman", "buildah", "skopeo"), (_scan_login, _scan_creds)),
    "az": (_scan_login, _scan_store_value(("keyvault", "secret", "set"))),
    "aws": _scan_store_value(("ssm", "put-parameter")),
    "kubectl": _scan_kubectl,
    **{
        program: _scan_after_subcommand(subcommands)
        for program, subcommands in _SUBCOMMAND_PASSWORD_OPTIONS.items()
    },
    "oc": (_scan_kubectl, _scan_after_subcommand(_SUBCOMMAND_PASSWORD_OPTIONS["oc"])),
    "cf": (_scan_after_subcommand(_SUBCOMMAND_PASSWORD_OPTIONS["cf"]), _scan_cf_auth),
    "poetry": (_scan_after_subcommand(_SUBCOMMAND_PASSWORD_OPTIONS["poetry"]), _scan_poetry_config),
    "cargo": _scan_cargo,
    "doctl": _scan_short_option("-t", "secret"),
    "dotnet": _scan_after_words(("nuget", "push|delete"), "-k", "secret"),
    "security": _scan_after_words(
        ("add-generic-password|add-internet-password",), "-w", "password"
    ),
    "lftp": _scan_lftp,
    # Not programs: subcommands (aws configure set NAME VALUE, npm config set NAME VALUE).
    "configure": _scan_configure_set,
    "config": _scan_configure_set,
}


def _argv_secrets(items: Sequence[Any]) -> dict[int, Found]:
    """The items of a list that are (or end in) a secret, by index.

    The item after an option naming a secret (``--password``, ``-storepass``), curl's
    ``-u user:password``, and the options of the programs whose own options carry a
    password (``sshpass -p``, ``redis-cli -a``, ``mysql -ppw`` ...) when the list runs
    one: an item naming the program (its last path component) starts its arguments.
    """
    found: dict[int, Found] = {}
    # Where each scan stopped reading (see ``Scan``): a naming of its program before
    # that is one of the arguments it read.
    resume: dict[Scan, int] = {}
    httpie = _httpie_index(items)
    if httpie is not None:
        # (Glued -aTOKEN too: where the list runs HTTPie, any -aVALUE is its auth.)
        _scan_httpie_auth(items, httpie + 1, found)
    previous: Any = None
    for index, item in enumerate(items):
        if type(item) is str:
            if type(previous) is str:
                kind = option_kind(previous)
                if kind is not None:
                    found[index] = (kind, "", item)
                elif previous in _DATA_OPTIONS and item[:5].lower() == "code=" and "&" not in item:
                    found[index] = ("secret", item[:5], item[5:])  # curl -d code=pw
                elif previous in _USER_OPTIONS and ":" in item and index not in found:
                    # (Not one a program's scan took: Samba's -U user%pw holding a ':'.)
                    user, _, password = item.partition(":")
                    # Not a URL (url-credentials' part), nor the ':' of a tag placed
                    # in this item before (redacted again, "x [REDACTED:kind:...]").
                    if not password.startswith("//") and _TAG_PREFIX not in user + ":":
                        found[index] = ("password", user + ":", password)
                elif previous == _FROM_LITERAL and (assigned := _assigned(item, "")):
                    found[index] = assigned  # kubectl create secret ... --from-literal k=v
                elif "extraheader" in previous.lower() and _EXTRA_HEADER_SETTING.fullmatch(
                    previous
                ):
                    # git config http.extraheader "X-Auth: tok"
                    header_value = _HEADER_VALUE.fullmatch(item)
                    if header_value is not None:
                        found[index] = ("secret", header_value["name"], header_value["value"])
            if index not in found and "extraheader" in item.lower():
                # git -c "http.extraheader=X-Auth: tok" as one item: the header's name kept
                setting, equals, header = item.partition("=")
                header_value = _HEADER_VALUE.fullmatch(header)
                if equals and header_value and _EXTRA_HEADER_SETTING.fullmatch(setting):
                    kept = f"{setting}={header_value['name']}"
                    found[index] = ("secret", kept, header_value["value"])
            if "=" in item and index not in found:
                # One item is one word: "--password=a b" and "PGPASSWORD=a;b" hold the
                # secret to its end.
                option, _, value = item.partition("=")
                if item[:1] != "-":
                    kind = assignment_kind(option)
                    if kind is not None:
                        found[index] = (kind, option + "=", value)
                elif (kind := option_kind(option)) is not None:
                    found[index] = (kind, option + "=", value)
                elif option == _FROM_LITERAL and (assigned := _assigned(value, option + "=")):
                    found[index] = assigned
                elif "=" in value:
                    # An option whose value assigns one: psql --set=passwd=...,
                    # docker run --env=DB_PASSWORD=...
                    name, _, assigned_value = value.partition("=")
                    kind = assignment_kind(name)
                    if kind is not None:
                        found[index] = (kind, f"{option}={name}=", assigned_value)
            if ":" in item and index not in found and (line := _YAML_LINE.fullmatch(item)):
                # A line of YAML as one word (echo 'password: a<b c'): to its end. Not
                # a header (Authorization: Bot tok), read by its own pattern, which
                # keeps the scheme.
                kind = assignment_kind(line["name"])
                if kind in _YAML_KINDS:
                    found[index] = (kind, line["head"], line["value"])
            name = item.rpartition("/")[2]
            scans = _PROGRAM_SCANS.get(name, ())
            if not scans and name[:1] in "mM" and _MYSQL.fullmatch(name) is not None:
                scans = _scan_mysql
            for scan in scans if isinstance(scans, tuple) else (scans,):
                if index >= resume.get(scan, 0):
                    resume[scan] = scan(items, index + 1, found)
        elif type(item) is int and type(previous) is str:
            kind = option_kind(previous)
            if kind is not None:
                found[index] = (kind, "", str(item))
        previous = item
    # A secret already replaced by a tag (a record redacted twice) is left as it is.
    return {
        index: (kind, kept, secret)
        for index, (kind, kept, secret) in found.items()
        if secret
        and not secret.startswith(_TAG_PREFIX)
        and not (type(items[index]) is str and items[index].startswith(_TAG_PREFIX))
    }


# A brace list on a command line (bash's ``{sshpass,-p,pw}``, ``x{a,b}y``) is one word as
# written and several once the shell expands it: an option and its secret can hide in
# one. The expansion is only a view for the argv scans (``_brace_secrets``), and a
# bounded one: bash's grows as a product of the lists (``{a,b}{c,d}...``), and a record
# is redacted on the event loop.
_BRACE_WORDS_LIMIT = 256
_BRACE_SCAN_BUDGET = 1 << 16  # characters read or made, over all the lists of one record
_BRACE_DEPTH_LIMIT = 32  # lists nested, or following one another in one word


class _Budget:
    """Characters the brace expansion of one record may still read or make."""

    __slots__ = ("left",)

    def __init__(self, left: int = _BRACE_SCAN_BUDGET) -> None:
        self.left = left


def _skip_quoted(word: str, index: int) -> int:
    """The index after the backslash escape or the quoted text starting at ``index``,
    or ``index`` itself when neither starts there."""
    char = word[index]
    if char == "\\":
        return index + 2
    if char in "'\"":
        close = word.find(char, index + 1)
        return len(word) if close < 0 else close + 1
    return index


def _may_open_list(word: str, index: int) -> bool:
    """Whether the ``{`` at ``index`` may open a brace expression: not a parameter's
    ``${``, nor a ``{`` that starts the word with a ``}`` right after it (``{}``)."""
    if index > 0:
        return word[index - 1] != "$"
    return word[1:2] != "}"


def _first_brace_list(word: str, budget: _Budget) -> tuple[int, list[int] | None, int] | None:
    """Where bash finds the first brace expression of ``word``: the index of its
    ``{``, of its top-level commas (None for a sequence such as ``{1..3}``) and of its
    ``}``; None when there is none, or when ``budget`` runs out.

    As bash's brace_gobbler reads a word: a backslash escapes the next character,
    quotes hide what they hold, ``${`` opens a parameter, not a list, a ``{`` that
    starts the word and is followed by ``}`` is not one either, and a ``}`` closes the
    expression only once a comma (or a sequence's ``..``) was seen at its level, so
    ``{a}b,c}`` is the list ``a}b`` and ``c``. A ``{`` never closed is literal, and the
    search goes on from the character after it.
    """
    length = len(word)
    search = 0
    while True:
        opened = search
        while opened < length:
            skipped = _skip_quoted(word, opened)
            if skipped != opened:
                opened = skipped
                continue
            if word[opened] == "{" and _may_open_list(word, opened):
                break
            opened += 1
        if opened >= length:
            return None
        depth, sequence = 0, False
        commas: list[int] = []
        index = opened + 1
        while index < length:
            skipped = _skip_quoted(word, index)
            if skipped != index:
                index = skipped
                continue
            char = word[index]
            if char == "{":
                depth += 1
            elif char == "}":
                if depth:
                    depth -= 1
                elif commas or sequence:
                    break
            elif depth == 0:
                if char == ",":
                    commas.append(index)
                elif word.startswith("..", index) and word[index + 2 : index + 3] != "}":
                    sequence = True
            index += 1
        budget.left -= index - opened
        if budget.left < 0:
            return None
        if index < length:
            return opened, (commas or None), index
        search = opened + 1


def _expand_braces(word: str, budget: _Budget, depth: int) -> list[str]:
    """``brace_words`` of ``word``, ``depth`` lists deep into the expansion."""
    if depth > _BRACE_DEPTH_LIMIT:
        return [word]
    found = _first_brace_list(word, budget)
    if found is None:
        return [word]
    opened, commas, closed = found
    before = word[:opened]
    if commas is None:
        middles = [word[opened : closed + 1]]  # a sequence makes no text not written
    else:
        bounds = [opened, *commas, closed]
        middles = []
        for start, end in itertools.pairwise(bounds):
            middles += _expand_braces(word[start + 1 : end], budget, depth + 1)
            if len(middles) >= _BRACE_WORDS_LIMIT:
                break
    # As bash: the text after the list is expanded on its own, then joined to each item.
    afters = _expand_braces(word[closed + 1 :], budget, depth + 1)
    words = []
    for middle in middles:
        for after in afters:
            joined = before + middle + after
            words.append(joined)
            budget.left -= len(joined)  # the words made count too: they are copies
            if len(words) >= _BRACE_WORDS_LIMIT or budget.left < 0:
                return words
    return words


def brace_words(word: str, budget: _Budget | None = None) -> list[str]:
    """The words bash's brace expansion makes of ``word`` (quotes kept as written), at
    most ``_BRACE_WORDS_LIMIT`` of them: ``{sshpass,-p,pw}`` is ``["sshpass", "-p",
    "pw"]``. Sequences (``{1..3}``) are kept as written: they make no text that was not.

    Expanding stops where ``budget`` (by default ``_BRACE_SCAN_BUDGET`` characters read
    or made) runs out, or ``_BRACE_DEPTH_LIMIT`` lists deep: what is left is kept as
    written.
    """
    words = _expand_braces(word, budget if budget is not None else _Budget(), 0)
    # bash drops the words that expand to nothing ("{,x}" is "x"); a quoted empty word
    # ("''") is not empty here, quotes being kept.
    return [word for word in words if word]


def _brace_secrets(items: Sequence[Any], budget: _Budget) -> list[Found]:
    """The secrets the argv scans find in ``items`` once their brace lists are expanded
    as bash would (``{sshpass,-p,pw}`` runs ``sshpass -p pw``); none without a list.

    A secret the expansion assembles from pieces (``{hun,}ter22`` makes ``hunter22``) is
    written nowhere: the whole item that makes it is given as the secret instead. So is
    a secret too short to be spread by its text (``MIN_SPREAD_CHARACTERS``) inside an
    item with a brace list (``{sshpass,-p,pw}``): the item, never shorter than a list,
    can be. A short secret that is an item of its own (``{sshpass,-p} pw``) is given as
    it is, and spread as a whole word only (``Redactor.redact``).
    """
    if not any(type(item) is str and "{" in item and "," in item for item in items):
        return []
    expanded: list[Any] = []
    origins: list[int] = []  # the index in items of each expanded word
    for index, item in enumerate(items):
        if type(item) is str and "{" in item and "," in item and budget.left > 0:
            words = brace_words(item, budget=budget)
        else:
            words = [item]
        expanded += words
        origins += [index] * len(words)
    secrets = []
    for index, (kind, kept, secret) in _argv_secrets(expanded).items():
        written = items[origins[index]]
        too_short = len(secret) < MIN_SPREAD_CHARACTERS
        if type(written) is str and written != secret and (secret not in written or too_short):
            secret = written
        secrets.append((kind, kept, secret))
    return secrets


# An object naming a value by its "name" (or "key"), as HAR files list headers, a
# Kubernetes container its env, Postman its headers: {"name": "Authorization", "value":
# "..."}. The "value" is a secret when the name is one a key could have. Go's encoding/json
# writes a struct's fields capitalised (net/http.Cookie: {"Name": ..., "Value": ...}).
_PAIR_NAME_KEYS = ("name", "key", "Name", "Key")
_PAIR_VALUE_KEY = "value"
_PAIR_VALUE_KEYS = (_PAIR_VALUE_KEY, "Value")
# A Kubernetes Secret ({"kind": "Secret", "data": {...}, "stringData": {...}}): every value
# of its data is a secret, whatever its key is called (db-pw, tls.key, .dockerconfigjson).
_SECRET_OBJECT_KIND = "Secret"
_SECRET_OBJECT_FIELDS = frozenset({"data", "stringData"})


def is_secret_object(item: dict[Any, Any]) -> bool:
    """Whether ``item`` is a Kubernetes Secret holding data."""
    return item.get("kind") == _SECRET_OBJECT_KIND and not _SECRET_OBJECT_FIELDS.isdisjoint(item)


# A Kubernetes API request on Secrets (its normalised "resource", or a path to them):
# what its context carries under data or stringData is a Secret's data, though a patch
# or an update's body comes without "kind: Secret".
_SECRETS_RESOURCE = "secrets"
_SECRETS_PATH = re.compile(r"/api/v1/(?:namespaces/[^/]+/)?secrets(?:/|$)")
_REQUEST_CONTEXT = "context"
# A JSON patch operation on a Secret's data ({"op": "add", "path": "/data/pw", "value": ...}).
_DATA_PATCH_PATH = re.compile(r"/(?:data|stringData)(?:/|$)")
# A patch or body as text: a JSON key or a YAML line data: or stringData:.
_SECRET_DATA_TEXT = re.compile(
    r"""(?:\\?["'](?:data|stringData)\\?["']|(?m:^)[ \t]*(?:data|stringData))[ \t]*:"""
)


def is_secrets_request(item: dict[Any, Any]) -> bool:
    """Whether ``item`` is a request whose ``k8s`` names Secrets."""
    k8s = item.get("k8s")
    if not isinstance(k8s, dict):
        return False
    resource = k8s.get("resource")
    if type(resource) is str and resource.partition("/")[0] == _SECRETS_RESOURCE:
        return True
    path = k8s.get("path")
    return type(path) is str and _SECRETS_PATH.search(path) is not None


def holds_secret_data(item: dict[Any, Any]) -> bool:
    """Whether ``item``, in the context of a request on Secrets, holds their data: a
    ``data`` or ``stringData`` field, or a JSON patch operation on one."""
    if not _SECRET_OBJECT_FIELDS.isdisjoint(item):
        return True
    path = item.get("path")
    return (
        _PAIR_VALUE_KEY in item and type(path) is str and _DATA_PATCH_PATH.match(path) is not None
    )


# A cookie as browsers and their drivers list one (Playwright, Puppeteer, Selenium, a
# HAR file, a browser extension): its name, its value, its attributes. The value is a
# session's credential, whatever the cookie is called. Playwright's addCookies takes a
# "url" instead of a domain. Compared lower-cased (Go's "Domain", "HttpOnly").
_COOKIE_ATTRIBUTES = frozenset(
    {"domain", "expires", "expiry", "expirationdate", "hostonly", "httponly", "samesite"}
    | {"secure", "url"}
)


def _has_pair_value(item: dict[Any, Any]) -> bool:
    return any(key in item for key in _PAIR_VALUE_KEYS)


def is_named_value(item: dict[Any, Any]) -> bool:
    """Whether ``item`` is a name/value pair (``{"name": "sid", "value": ...}``)."""
    return _has_pair_value(item) and (
        type(item.get("name")) is str or type(item.get("Name")) is str
    )


def _has_cookie_attribute(item: dict[Any, Any]) -> bool:
    return any(type(key) is str and key.lower() in _COOKIE_ATTRIBUTES for key in item)


def pair_kind(item: dict[Any, Any]) -> str | None:
    """The redaction kind of ``item["value"]`` when ``item`` names it by a secret's name
    (``{"name": "API_TOKEN", "value": "..."}``) or is a cookie (a name, a value and a
    cookie's attributes: ``{"name": "sid", "value": "...", "domain": "..."}``), or None."""
    if not _has_pair_value(item):
        return None
    for key in _PAIR_NAME_KEYS:
        name = item.get(key)
        if type(name) is str:
            kind = secret_key_kind(name)
            if kind is not None:
                return kind
    if is_named_value(item) and _has_cookie_attribute(item):
        return "cookie"
    return None


_KEY_NAME_FORM = str.maketrans(string.ascii_uppercase, string.ascii_lowercase, "-_")


# Vault's AppRole SecretID as its API spells the key: the '_' tells it from AWS's SecretId,
# which names a secret to read (the other names are read without their '-' and '_').
_SNAKE_KEY_SUFFIXES = (("secret_id", "secret"), ("_pw", "password"), ("-pw", "password"))
# Terraform's TF_TOKEN_<host>, in an env object as on a command line.
_KEY_PREFIXES = (("tf_token_", "secret"),)
_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


@functools.lru_cache(maxsize=4096)
def secret_key_kind(key: str) -> str | None:
    """The redaction kind for values under object key ``key``, or None."""
    name = key.translate(_KEY_NAME_FORM)
    kind = _SECRET_KEYS.get(name)
    if kind is not None:
        return kind
    lowered = key.translate(_ASCII_LOWER)
    for suffix, suffix_kind in _SNAKE_KEY_SUFFIXES:
        if lowered.endswith(suffix):
            return suffix_kind
    for prefix, prefix_kind in _KEY_PREFIXES:
        if lowered.startswith(prefix):
            return prefix_kind
    for suffix, suffix_kind in _SECRET_KEY_SUFFIXES:
        if name.endswith(suffix):
            return suffix_kind
    return None


# The screens: anything a precise pattern or a secret-named key needs, case-insensitively.
# Words that start a token or a header are enough on their own.
_TRIGGERS = (
    r"-----BEGIN|authori[sz]ation|cookie|bearer|api-key|auth-token|://[^\s/]*@|eyJ"
    r"|://[^\s/:@]*:[^\s@]*/[^\s@]*@"  # a URL password holding a '/'
    # (AWS's prefixes in capitals only, as their pattern: "acca" is hex, in every hash.)
    r"|gh[pousr]_|github_pat_|(?-i:AKIA|ASIA|ABIA|ACCA)|xox[a-z]-|sk-|[sr]k_live_|AIza"
    r"|glpat-|gldt-|glrt-|glptt-|npm_|hf_|pypi-AgE|dckr_pat_|hv[sbr]\."
    r"|hooks\.slack\.com/|/webhooks/|api\.telegram\.org/"
    r"|/IncomingWebhook/"
    r"|[sr]k_test_|whsec_|SG\.[A-Za-z0-9_-]{22}\.|shp(?:at|ca|pa|ss)_|dapi[0-9a-f]|do[opr]_v1_"
    r"|glc_|glsa_|tskey-|xapp-|AGE-SECRET-KEY-1"
    # Vendors' prefixes as their patterns read them, at a word's start and with 20 of the
    # token's characters: rubygems_plugin.rb, required_rubygems_version and GTK's
    # gsk_renderer_new are no tokens. (In JSON the character before may be escaped.)
    r"|(?:^|[^a-z0-9_]|\\[btnfr]|\\u00[0-9a-f]{2})(?:(?:sntryu|lin_api|ntn|r8|gsk|rubygems)_"
    r"[a-z0-9]{20}|(?:sntrys_|ATATT3|ya29\.)[a-z0-9+/=_.-]{20})"
    # A .netrc entry (machine HOST ... password PW), a .pgpass line in a string naming it.
    # (No \b before a word: in JSON, the line before may end in an escaped "\n".)
    r"|machine(?:[ \t\r\n]|\\{1,2}[tnr])|default(?:[ \t\r\n]|\\[tnr])+login|pgpass"
    # Terraform's TF_TOKEN_<host>, as an object key too (the names ending in a secret's are
    # screened below).
    r"|tf_token_"
    # Programs whose own options carry a password (sshpass -p, redis-cli -a ...).
    r"|sshpass|(?:redis|valkey|keydb)-cli|rediscli_auth|htpasswd|keytool|openssl"
    r"|ldap[a-z]*\b|sqlcmd|\bbcp\b|mongo|ssh-keygen|mysqladmin|\b(?:un)?zip(?:\s|\\[tnrf]|\",\")"
    # Secrets given to a secret store or a login (aws ssm put-parameter --value, echo pw |
    # docker secret create NAME -, gcloud secrets ... --data-file=-, twine upload -p pw).
    r"""|put-parameter|--data-file|secret(?:\s|\\t|",")+create|twine|poetry|cargo"""
    # curl's -b NAME=VALUE (with --cookie, "cookie" above), a proxy's USER:PASSWORD@.
    # (A tab or newline before -b is an escape in canonical JSON: curl\t-b, "\\\n-b".)
    # (The cluster of curl's letters that take no value, in their case: not -debug=true,
    # -verbose=true nor -Ddb.url=..., everyday single-dash options with a 'b'.)
    rf"""|(?:\s|\\[tnr]|",")(?-i:-{_CURL_FLAGS}{{0,16}}b)(?:\s|\\[tnr]|",")*[^\s=]{{0,256}}="""
    # (Bounded: a thread left open to the end of the text by a "-x" in a long word made
    # the screen quadratic, "xapp-1-" repeated, as the leftmost match waits for it.)
    r"""|(?:-x|--(?:pre)?proxy)(?:\s|\\t|=|",")*[^\s/:]{0,256}:[^@]{0,256}@"""
    r"""|--(?:src-|dest-)?creds"""
    r"|_proxy="
    # Samba's user%password (smbclient -U u%pw, net ... -U u%pw), smbclient's service
    # password, rabbitmqctl add_user u pw, MinIO's mc alias set ... ACCESS SECRET.
    r"|smbc|smbget|smbtree|rpcclient|samba-tool|rabbitmqctl|rclone"
    # (cf's global options before auth: unbounded, as bounded repetitions here made the
    # screen too large for RE2's DFA, which then fell back to its NFA on every hit.)
    r"""|(?:\b|\\[tnrf]|\\u000b)cf(?:\s|\\t|",")+(?:-[a-z-]*(?:\s|\\t|",")+)*auth(?:\s|\\t|",")"""
    r"|(?:-U|--user(?:name)?)(?:\s|\\t|=|\",\")*[^\s\"%]*%"
    r"|alias(?:\s|\\[tn]|\",\")+set|host(?:\s|\\[tn]|\",\")+add"
    # Options whose value is KEY=VALUE (kubectl's --from-literal, --env).
    r"|from-literal|--env"
    # git's http.extraheader, whatever the header is called.
    r"|extraheader"
    # A secret a program reads from its standard input (--password-stdin <<< pw, echo pw
    # | chpasswd), and SQL that sets one (PASSWORD 'pw', IDENTIFIED BY pw).
    r"|(?:password|pass|token|secret)-stdin|--with-token|passwd(?:\s|\\t)+--stdin|chpasswd"
    r"|sudo(?:\s|\\t)+-"
    # Programs whose own option carries a token or a password (doctl -t, dotnet nuget push
    # -k, cqlsh -p, lftp -u USER,PW, HTTPie's -a, security add-generic-password -w).
    r"|doctl|nuget|cqlsh|lftp|add-(?:generic|internet)-password"
    # HTTPie's word with its -a after it, in the same string (white space, '=' or a glued
    # value holding a ':' after the -a), or in the same list (an item -a...): the word
    # alone is prose ("fix the http client") or a path (./pkg/http), and holds no secret.
    r"""|(?:^|[\s/"'`(){};&|!]|\\[tnrf]|\\u000b)https?(?:ie)?\\?["']?(?:\s|\\\s|\\[tn]|\\\\\\n)"""
    r"""(?:(?:[^"\\]|\\.)*(?:\s|\\[tn]|\\\\\\n))?-a(?:\s|\\|=|(?:[^\s"\\]|\\.)*:)"""
    # In a list only as an item (after '[' or ',', a path before it): a request's
    # "scheme":"https", on every network record, is an object's value, not a program.
    r'|[\[,]"(?:[^",]*/)?https?(?:ie)?"(?:[^"\[\]{}]|"(?:[^"\\]|\\.)*")*"-a(?:",|[^"-])'
    r"""|(?:-E|--cert|--proxy-cert)(?:\s|=|\\t|",")+[^\s":]*:"""
    r"""|secret(?:\s|\\t|",")+set\b"""
    r"|password(?:\s|\\[tnrf]|\()*'|identified|set(?:\s|\\[tnrf])+password"
)
# Words that only name a secret ("password", "token" ...) matter when something is
# assigned to them (password=..., "token: ..."; the "password" and "secret" patterns).
# A path like /srv/secrets/ or a Kubernetes resource "secrets" holds no secret.
_NAME_CORE = (
    r"(?:password|passwd|pwd?|pass|secret|token|api[-_]?key|access[-_]?key|private[-_]?key"
    rf"|credential|sig|code[-_]?verifier|device[-_]?code|{_QUALIFIED_KEYS}|auth)"
)
_NAME_WORDS = _NAME_CORE + r"[A-Za-z0-9_-]*"
# An option word naming a secret ("--password", "-db_token"), at the start of a string
# or after white space, so that a rule id such as "no-secrets" in a reason is not one.
_OPTION_WORD = r"--?[A-Za-z0-9_-]*" + _NAME_WORDS


def _key_ending(name: str) -> str:
    """An object key whose name, as ``secret_key_kind`` reads it, ends with ``name``."""
    return _spread(name) + '":'


# A name/value pair ({"name":"API_TOKEN","value":...}, see ``pair_kind``): its name, in
# canonical JSON (as an object), or written as JSON text in a string (escaped or not).
_PAIR_SCREEN = (
    r'"(?:name|key)":"(?:[^"\\]|\\.)*(?:'
    + "|".join([*(_spread(n) for n in _ALL_KEY_NAMES), *dict(_SNAKE_KEY_SUFFIXES)])
    + ')"'
)
# An XML element named as a secret-holding key (see ``_xml_element``), in either screen.
_XML_SCREEN = r"<[^<>\s]*(?:" + "|".join(_spread(n) for n in _ALL_KEY_NAMES) + r")[^<>]*>"
_PAIR_TEXT_SCREEN = r"""(?:name|key)[\\"' ]*:(?:[\\"' ]|\\[tnrf]|\\u000b)*[A-Za-z0-9_.-]*"""


# A request's k8s naming Secrets, in canonical JSON (``is_secrets_request``).
_SECRETS_SCREEN = r'(?:"resource":"secrets|"path":"[^"]*/api/v1/(?:namespaces/[^/"]*/)?secrets)'


# Over canonical JSON bytes. A key ends with '":', and every key that secret_key_kind
# names ends with one of its names, spread with '-' and '_' ("Api_Key", "t-o-k-e-n").
# Inside a string a double quote is \" and whitespace other than the space is escaped
# (\t \n \r \f \u000b).
_SCREEN_PATTERN = "|".join(
    [
        _TRIGGERS,
        # A brace list inside a string ("{sshpass,-p,pw}"): its words are only seen once
        # expanded (_brace_secrets), and a list can split any word the screen looks for
        # ("--pass{word=pw,}"). Not an object: in canonical JSON a "{" that opens one is
        # followed by a bare quote or, empty, by "}".
        r"""\{(?:(?:[^"\\}]|\\.)(?:[^"\\]|\\.)*)?,""",
        _NAME_WORDS + r"""(?:\\\\|\\"|'|\s|\\[tnrf]|\\u000b)*[:=]""",
        # An option whose value is the next word or argv item: "--password","pw".
        # curl's -u user:pw (in argv "-u","user:pw"), mysql's -ppw.
        r"""(?:"|\s|\\[tnrf]|\\u000b)(?:-u|--(?:proxy-)?user)(?:",?"|(?: |\\t)+|=)?[^\s":/]*:""",
        r"""(?:"|\s|\\[tnrf]|\\u000b)-p[^\s"]""",
        # docker login -p pw ("login","-p","pw" in argv); an OAuth code=.
        r"""(?:"|\s|\\[tnrf]|\\u000b)login(?:"|\s|\\[tnrf]|\\u000b)""",
        r"(?:[^A-Za-z0-9_]|\\[tnrf]|\\u000b|-[dF])code=",
        # kubectl's -e NAME=VALUE and set env NAME=VALUE, in a command line or a list.
        r"""(?:"|'|\s|\\[tnrf]|\\u000b|\\)-e(?:=|"|'|\s|\\)""",
        r'set(?:\s|\\t|\\\\\\n)+env|"set","env"',
        # aws configure set NAME VALUE, in a command line or a list.
        r'config(?:ure)?(?:\s|\\t|\\\\\\n)+set|"config(?:ure)?","set"',
        # (or a line continuation: a backslash, "\\\\" in JSON, and a newline)
        r"""(?:"|\s|\\[tnrf]|\\u000b)""" + _OPTION_WORD + r"""(?:"|\s|\\[tnrf]|\\u000b|\\\\\\n)""",
        *sorted({_key_ending(name) for name in _ALL_KEY_NAMES}),
        *(name + '":' for name in dict(_SNAKE_KEY_SUFFIXES)),
        _PAIR_SCREEN,
        _PAIR_TEXT_SCREEN + _NAME_CORE,
        _XML_SCREEN,
        # A Kubernetes Secret: as an object ("kind":"Secret"), as YAML or JSON text, and
        # kubectl patch secret's patch, in a command line or a list.
        r"""kind(?:\\?")?(?: |\\t)*:(?: |\\t)*(?:\\?")?secret\b""",
        r"""patch(?: |\\t|",")(?:[^"\s\\]+(?: |\\t|",")){0,3}secrets?\b""",
        # A request on Secrets carrying their data in its context (which comes before its
        # k8s in canonical JSON; either order is screened), and a cookie's attributes.
        rf"(?:data|stringData)\b.*{_SECRETS_SCREEN}|{_SECRETS_SCREEN}.*(?:data|stringData)\b",
        r'"(?:domain|expires|expiry|expirationDate|hostOnly|httpOnly|sameSite|secure)":',
        # Playwright's cookie with a url (canonical JSON sorts its keys: name, url, value).
        r'"name":"[^"\\]{1,64}","url":',
    ]
)
# Over plain strings, as the precise patterns see them (keys are named apart, by
# secret_key_kind). Their \s (Python, re.ASCII) includes the vertical tab, RE2's does
# not: the class is spelled out.
_SCREEN_TEXT_PATTERN = (
    _TRIGGERS
    + "|"
    + _NAME_WORDS
    + r"""\\?["']?[\t\n\x0b\f\r ]*[:=]"""
    + r"|(?:^|[\t\n\x0b\f\r ])"
    + _OPTION_WORD
    + r"(?:[\t ]|\\\n)"
    + r"""|(?:^|[\t\n\x0b\f\r ])(?:-u|--(?:proxy-)?user)(?:[\t =]|\\\n)*["']?"""
    + r"""[^\t\n\x0b\f\r :"'/]*:"""
    + r"|(?:^|[\t\n\x0b\f\r ])-p[^\t\n\x0b\f\r ]"
    + r"|[\t ]login[\t ]|(?:^|[^A-Za-z0-9_]|-[dF])code="
    + r"""|(?:^|[\t\n\x0b\f\r "'\\])-e[=\t\n\x0b\f\r "'\\]|set(?:[\t ]|\\\n)+env"""
    + r"|config(?:ure)?(?:[\t ]|\\\n)+set"
    + r"""|(?:name|key)\\?["']?[\t\n\x0b\f\r ]*:[\t\n\x0b\f\r ]*\\?["'][A-Za-z0-9_.-]*"""
    + _NAME_CORE
    + "|"
    + _XML_SCREEN
    + r"""|kind\\?["']?[\t ]*:[\t ]*\\?["']?secret\b|patch[\t ]+(?:[^\s]+[\t ]+){0,3}secrets?\b"""
)
_screen_options = re2.Options()
_screen_options.case_sensitive = False
_SCREEN = re2.compile(_SCREEN_PATTERN.encode("ascii"), options=_screen_options)
_SCREEN_TEXT = re2.compile(_SCREEN_TEXT_PATTERN, options=_screen_options)


_TAG_PREFIX = "[REDACTED:"
# A '..' path segment inside a value a pattern took for a secret (see ``_substitute``).
_TRAVERSAL = re.compile(r"/\.\.(?=/|$)")
_TRIMMED = "\"'\\ \t"
_TAG = re.compile(r"(\[REDACTED:[a-z-]+:[0-9a-f]{8}\])")
# A secret found anywhere in a record is also replaced wherever else its text occurs in
# the record's request, if it is at least this long: shorter ones would take ordinary
# words and numbers with them.
MIN_SPREAD_CHARACTERS = 4
# A secret longer than this is spread by plain text replacement, not by a regex.
_LONG_SECRET = 256
# The fields of a record that quote the request: the request itself, a decision's
# reason, and an approval's ``policyReason`` (the reason its check was answered with).
_SPREAD_FIELDS = ("request", "reason", "policyReason")
# The fields whose text quotes the request in labels, which cut a long text short with
# '…' (``shorten`` in ``sidecar.normalise.shell_context``); the longest part of a secret
# such a label can hold (its LABEL_LENGTH, with room); the labels looked at in one text.
_LABELLED_FIELDS = frozenset({"reason", "policyReason"})
# The characters a shell reads as more than themselves in a bare word, and inside
# double quotes: a command line escapes them with a backslash to pass them on.
_SHELL_SPECIAL = re.compile(r"""[^A-Za-z0-9_@%+=:,./-]""")
_DOUBLE_QUOTED_SPECIAL = re.compile(r"""[\\"$`]""")
# A request's command line, written as the shell reads it (``request.commandLine``).
_COMMAND_LINE = "commandLine"
_ELLIPSIS = "…"
_ELLIPSIS_AT = re.compile(_ELLIPSIS)
_LONGEST_CUT = 160
_MOST_CUTS = 16


# A NAME=VALUE word of a shell command line, quoted pieces and backslash escapes taken
# whole; not one holding an expansion ($, `), whose value the line does not show.
_ASSIGNMENT_WORD = re.compile(
    r"""(?:^|(?<=[\s;&|(]))([A-Za-z_][A-Za-z0-9_]*)="""
    r"""((?:[^\s"'\\;&|<>()`$]++|\\[^\n]|"(?:[^"\\$`]|\\[^\n])*+"|'[^']*+')++)"""
    r"""(?![^\s;&|<>()])""",
    _FLAGS,
)


def shell_assignments(command_line: str) -> list[str]:
    """The ``NAME=VALUE`` words of ``command_line`` whose VALUE holds a backslash
    escape, with the quotes and escapes removed as the shell removes them
    (``PGPASSWORD=a\"b`` gives ``PGPASSWORD=a"b``). A redaction view: the text patterns,
    which also read JSON text, end a bare value at an escaped quote, where the shell
    does not; the analysed commands show no assignment."""
    if "\\" not in command_line:
        return []
    words = []
    for match in _ASSIGNMENT_WORD.finditer(command_line):
        value = match[2]
        if "\\" not in value:
            continue
        try:
            pieces = shlex.split(value)
        except ValueError:
            continue
        if len(pieces) == 1:
            words.append(f"{match[1]}={pieces[0]}")
    return words


class Redactor:
    """Replaces secrets in record bodies with keyed tags."""

    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("redaction key must be at least 16 bytes")
        self._key = key

    def tag(self, kind: str, secret: str) -> str:
        digest = hmac.new(self._key, secret.encode("utf-8", "surrogatepass"), sha256).hexdigest()
        return f"{_TAG_PREFIX}{kind}:{digest[:8]}]"

    def keyed_digest(self, data: bytes) -> str:
        """Hex HMAC-SHA256 of ``data`` under the redaction key, all 64 digits: a value
        that pins data holding secrets without letting anyone test guesses against it."""
        return hmac.new(self._key, data, sha256).hexdigest()

    @staticmethod
    def may_hold_secret(encoded: bytes) -> bool:
        """Fast screen over canonical JSON: False means there is nothing to redact."""
        return _SCREEN.search(encoded) is not None

    def redact(self, body: dict[str, Any]) -> dict[str, Any]:
        """A copy of ``body`` with every secret replaced; ``body`` itself if none found.

        One RE2 scan over all the body's strings (joined by newlines, which no screen
        match can cross) finds the few that may hold a secret; only those go through
        the precise patterns. Values under secret-named keys are replaced whole. When
        neither finds anything (a screen hit on a harmless word), ``body`` is returned
        without being rebuilt.

        A secret found in one place is then replaced wherever else its text occurs in
        ``body["request"]``, the request as the agent sent it and as the gate analysed
        it, and in ``body["reason"]`` and ``body["policyReason"]``, which quote it
        (``_everywhere``): a command
        line's analysed commands show a password that its raw text hides from the
        patterns (``sh -c "curl -u \\"bob:hunter22\\" …"``, ``s\\shpass -p hunter22``),
        and the raw text must not keep it; nor must a brace list that bash expands into
        an option and its secret (``{sshpass,-p,hunter22}``). The record's other fields
        are the gate's own (ids, hashes, rule names, mode): a secret's text inside one of
        them is a coincidence, and rewriting it would break the record.
        """
        # Text that writes out what the rest of the record holds is read last, once the
        # secrets found elsewhere have been replaced in it as written there: the reason
        # (shell-quoted, cut short) and a command line (its analysed words show each
        # secret whole, unescaped). Read first, a pattern stopping inside a password
        # ('PGPASSWORD=a'"'"'b', a\"b) left its rest where no spread found it.
        labels = {f: body[f] for f in _LABELLED_FIELDS if type(body.get(f)) is str}
        request = body.get("request")
        if not isinstance(request, dict):
            request = {}
        line = request.get(_COMMAND_LINE)
        if type(line) is not str:
            line = None
        rest = body
        if labels or line is not None:
            rest = {k: v for k, v in body.items() if k not in labels}
            if line is not None:
                rest["request"] = {k: v for k, v in request.items() if k != _COMMAND_LINE}
        found: dict[str, str] = {}
        words: dict[str, str] = {}
        result = self._redact_fields(rest, found, words)
        if line is not None and (assigned := shell_assignments(line)):
            # Found here, spread into the line below, as its own words would be.
            self._redact_fields({"assignments": assigned}, found, words)
        known = len(found)
        spread = self._everywhere(found, words)
        late = {**labels, _COMMAND_LINE: line} if line is not None else dict(labels)
        new_late: dict[str, str] = {}
        for field, text in late.items():
            if spread is not None:
                text = self._cut_short(spread(text), found) if field in labels else spread(text)
            if _SCREEN_TEXT.search(text) is not None:
                text = self._rewrite(text, found)
            new_late[field] = text
        if len(found) > known:
            # A secret that only a late text showed: replaced in the others too.
            spread = self._everywhere(found, words)
        if spread is not None:
            spread_into = {
                field: spread(result[field]) for field in _SPREAD_FIELDS if field in result
            }
            if any(spread_into[field] is not result[field] for field in spread_into):
                result = {**result, **spread_into}
            for field, text in new_late.items():
                text = spread(text)
                new_late[field] = self._cut_short(text, found) if field in labels else text
        if result is rest and all(new_late[f] is late[f] for f in late):
            return body
        new_line = new_late.pop(_COMMAND_LINE, None)
        out = _put_back(body, result, new_late)
        if new_line is not None:
            out["request"] = _put_back(request, out["request"], {_COMMAND_LINE: new_line})
        return out

    def _redact_fields(
        self, body: dict[str, Any], found: dict[str, str], words: dict[str, str]
    ) -> dict[str, Any]:
        """``body`` with the secrets its patterns, keys and lists show replaced (a copy,
        or ``body`` itself when there is none); the secrets go into ``found``, and those
        of a brace list too short to spread but as a whole word into ``words``."""
        texts: list[str] = []
        braces: list[Found] = []
        secret_keys = _collect_strings(body, texts, braces, _Budget())
        rewritten: dict[int, Rewritten] = {}
        # Every secret tagged, and its kind; those behind a brace list are tagged by the
        # spread alone, as their text is not an item of their list. A short one of them
        # is an item of its own, and spread only where it is a whole shell word.
        found.update({secret: kind for kind, _, secret in braces})
        words.update({s: kind for s, kind in found.items() if len(s) < MIN_SPREAD_CHARACTERS})
        if texts:
            joined = "\n".join(texts)
            ends = list(itertools.accumulate(len(text) + 1 for text in texts))
            # A match may start at the newline before its string ("\n--password pw": the
            # screen's option word follows white space), which belongs to the string
            # before: each string it reaches into is flagged.
            flagged = {
                index
                for m in _SCREEN_TEXT.finditer(joined)
                for index in (
                    bisect.bisect_right(ends, m.start()),
                    bisect.bisect_right(ends, max(m.end() - 1, m.start())),
                )
            }
            for index in flagged:
                text = texts[index]
                secrets: dict[str, str] = {}
                new = self._rewrite(text, secrets)
                if new is not text:
                    rewritten[index] = (new, secrets)
        if not rewritten and not secret_keys and not found:
            return body
        result = self._value(body, None, rewritten, itertools.count(), found)
        assert isinstance(result, dict)
        return result

    def redact_quoting(self, text: str, quoted: Any) -> str:
        """``text``, which writes ``quoted`` out (a refused body kept as text, and its
        parse), with every secret replaced: first those that ``quoted`` shows (its lists
        and keys: an argv's ``"--password","pw"``), wherever ``text`` writes them, then
        those the patterns find in ``text``. In that order, as for a reason: a pattern
        stopping inside a password (``"PGPASSWORD=a>b"``) would leave its rest where
        the whole secret is no longer found."""
        found: dict[str, str] = {}
        words: dict[str, str] = {}
        self._redact_fields({"quoted": quoted}, found, words)
        spread = self._everywhere(found, words)
        if spread is not None:
            text = spread(text)
        return self._rewrite(text, found) if _SCREEN_TEXT.search(text) is not None else text

    def redact_text(self, text: str) -> str:
        """Replace every secret found in one string."""
        if _SCREEN_TEXT.search(text) is None:
            return text
        return self._rewrite(text)

    def _rewrite(self, text: str, found: dict[str, str] | None = None) -> str:
        """``text`` with every secret replaced; ``text`` itself when nothing was. The
        secrets replaced go into ``found``, with their kinds."""
        redacted = text
        lowered = text.lower()
        for secret in _PATTERNS:
            for literal in secret.literals:
                if literal in lowered:
                    break
            else:
                continue  # none of its literals: the pattern cannot match
            if secret.regex.search(redacted) is None:
                continue
            redacted = self._substitute(
                secret.regex,
                secret.kind,
                redacted,
                found,
                secret.trim,
                secret.values,
                to_line_end=secret.to_line_end,
                group_kinds=secret.group_kinds if secret.value_kinds else None,
            )
        return text if redacted == text else redacted

    def _substitute(
        self,
        regex: re.Pattern[str],
        kind: str | dict[str, str],
        text: str,
        found: dict[str, str] | None = None,
        trim: bool = False,
        values: re.Pattern[str] | None = None,
        aliases: dict[str, str] | None = None,
        to_line_end: bool = False,
        group_kinds: dict[int, str] | None = None,
    ) -> str:
        """``text`` with every match of ``regex`` replaced by the tag of its secret (its
        last group, or the whole match, or the secret that ``aliases`` says it writes
        otherwise), of ``kind`` (or of its kind in ``kind``, or of its group's in
        ``group_kinds``); with
        ``trim``, without the quotes, backslashes and white space at its ends. With
        ``values``, every match of ``values`` in each match of ``regex`` (after its
        group 1) instead (``SecretPattern.values``).

        The pattern is run between the tags already placed, so that none matches inside
        one (a tag's "api-key:1a2b3c4d" must not read as a key=value secret). It is run on
        the whole text, from one tag to the next, not on a copy of that stretch: what
        comes before a stretch is the tag's "]", not the start of a string, so a text
        redacted again reads as it did the first time (redaction is idempotent).
        """
        pieces: list[str] = []
        done = 0  # text[:done] is in pieces
        start = 0
        tags = [(tag.start(), tag.end()) for tag in _TAG.finditer(text)]
        for tag_start, tag_end in [*tags, (len(text), len(text))]:
            for match in _matches(regex, values, text, start, tag_start):
                group = match.lastindex or 0
                value = match.group(group)
                if not value or value.startswith(_TAG_PREFIX):
                    continue
                if (
                    to_line_end
                    and tag_start < len(text)
                    and not text[match.end() : tag_start].strip(" \t")
                ):
                    continue  # the line goes on past the tag (SecretPattern.to_line_end)
                begin, end = match.span(group)
                traversal = _TRAVERSAL.search(value)
                if traversal is not None:
                    # "rm -rf /tmp/pwd=1/../../etc": a '..' segment is where a path goes,
                    # not part of a secret; hidden in the tag, an approver would see a
                    # delete in /tmp where /etc is meant. The secret ends before it.
                    value = value[: traversal.start()]
                    end = begin + len(value)
                    if not value:
                        continue
                if trim:
                    value = value.strip(_TRIMMED)
                    if not value:
                        continue
                    begin = text.index(value, begin)
                    end = begin + len(value)
                if group_kinds is not None:
                    value_kind = group_kinds[group]
                else:
                    value_kind = kind if isinstance(kind, str) else kind[value]
                if aliases is not None:
                    value = aliases.get(value, value)
                pieces += (text[done:begin], self.tag(value_kind, value))
                if found is not None:
                    found.setdefault(value, value_kind)
                done = end
            start = tag_end
        if not pieces:
            return text
        pieces.append(text[done:])
        return "".join(pieces)

    def _value(
        self,
        value: Any,
        kind: str | None,
        rewritten: dict[int, Rewritten],
        counter: Any,
        found: dict[str, str],
        secret_data: bool = False,
    ) -> Any:
        """Rebuild ``value``, visiting strings in the order ``_collect_strings`` lists them.

        ``rewritten`` holds the redacted form of the strings, by that order, in which the
        precise patterns found a secret, with those secrets. The secrets replaced here go
        into ``found``: not those of a rewritten item that an argv scan replaces whole
        (the patterns may have read a part of it, ``--password=a\\b"c`` as ``a\\b``, and a
        part spread elsewhere would split the whole secret there).

        With ``secret_data``, ``value`` is (in) the context of a request on Secrets: their
        data in it is tagged (``holds_secret_data``), and a string that writes a ``data``
        or ``stringData`` field (JSON or YAML) is tagged whole, as a ``kubectl patch
        secret`` patch is.
        """
        if isinstance(value, str):
            index = next(counter)
            if kind is None and secret_data and _SECRET_DATA_TEXT.search(value):
                kind = "secret"
            if kind is not None and value and not value.startswith(_TAG_PREFIX):
                found.setdefault(value, kind)
                return self.tag(kind, value)
            return self._rewritten(rewritten, index, value, found)
        if kind is not None and type(value) is int:
            # A PIN or a one-time code under a secret-named key is a secret as a number
            # too; true, false and null say nothing.
            found.setdefault(str(value), kind)
            return self.tag(kind, str(value))
        if isinstance(value, dict):
            changed = False
            out: dict[Any, Any] = {}
            if kind == "cookie" and is_named_value(value):
                # A cookie in a list of them ("cookies": [{"name": "sid", "value": ...}]):
                # its name and attributes say which it is, its value is the secret.
                kind = None
                paired: str | None = "cookie"
            else:
                paired = pair_kind(value) if kind is None else None
            secret_object = kind is None and is_secret_object(value)
            if kind is None and secret_data and holds_secret_data(value):
                secret_object = True
                paired = "secret"  # a JSON patch operation's value
            request_on_secrets = kind is None and is_secrets_request(value)
            for key, item in value.items():
                new_key = key
                item_kind = kind
                if isinstance(key, str):
                    new_key = self._rewritten(rewritten, next(counter), key, found)
                    if item_kind is None:
                        item_kind = secret_key_kind(key)
                        if item_kind is None and key in _PAIR_VALUE_KEYS:
                            item_kind = paired
                        if secret_object and key in _SECRET_OBJECT_FIELDS:
                            item_kind = "secret"
                in_data = secret_data or (request_on_secrets and key == _REQUEST_CONTEXT)
                new_item = self._value(item, item_kind, rewritten, counter, found, in_data)
                changed = changed or new_key is not key or new_item is not item
                out[new_key] = new_item
            return out if changed else value
        if isinstance(value, list | tuple):
            items = []
            # An argv list: the value after --password, curl's -u user:pw, sshpass -p pw ...
            in_argv = _argv_secrets(value) if kind is None else {}
            for index, item in enumerate(value):
                item_found: dict[str, str] = {} if index in in_argv else found
                new = self._value(item, kind, rewritten, counter, item_found, secret_data)
                if index in in_argv:
                    argv_kind, kept, secret = in_argv[index]
                    # A pattern that read the whole secret by its form (github-token)
                    # names its kind where it is spread; the item keeps its list's kind.
                    if secret in item_found:
                        found.setdefault(secret, item_found[secret])
                    found.setdefault(secret, argv_kind)
                    # What follows the secret in its item stays: a proxy's @HOST.
                    after = item[len(kept) + len(secret) :] if type(item) is str else ""
                    new = kept + self.tag(argv_kind, secret) + after
                items.append(new)
            if any(new is not old for new, old in zip(items, value, strict=True)):
                return items
            return value
        return value

    @staticmethod
    def _rewritten(
        rewritten: dict[int, Rewritten], index: int, text: str, found: dict[str, str]
    ) -> str:
        """String ``index``'s redacted form (``text`` when none), its secrets into ``found``."""
        entry = rewritten.get(index)
        if entry is None:
            return text
        new, secrets = entry
        for secret, kind in secrets.items():
            found.setdefault(secret, kind)
        return new

    def _everywhere(
        self, found: dict[str, str], words: dict[str, str] | None = None
    ) -> Callable[[Any], Any] | None:
        """A function giving a value with the text of every secret in ``found`` (of at
        least ``MIN_SPREAD_CHARACTERS``) replaced by its tag wherever it still occurs in
        a string value, outside the tags already placed, and every secret in ``words``
        (however short) where it is a whole shell word: the whole string, or between
        white space, quotes and the start or end; None when there is none to spread.
        Keys are names, not values: one that happens to hold a secret's text (a PIN
        ``0000`` and a key ``0000apikey``) is kept, so that the request keeps its
        shape."""
        kinds = {
            secret: kind for secret, kind in found.items() if len(secret) >= MIN_SPREAD_CHARACTERS
        }
        kinds.update(words or {})
        if not kinds:
            return None
        # A secret is also written otherwise, and tagged as itself there: JSON-escaped
        # where a string holds JSON text (a refused body kept as text, JSON in a context
        # value: a\"b for a"b), and inside the single quotes a reason puts around an
        # argument (shlex.join: a'"'"'b for a'b).
        aliases: dict[str, str] = {}
        for secret, kind in list(kinds.items()):
            # As a command line writes it: a backslash before each character the shell
            # would read otherwise, bare (a\&b) or inside double quotes; and that
            # JSON-escaped again, as a refused body kept as text holds a command line.
            bare = _SHELL_SPECIAL.sub(r"\\\g<0>", secret)
            double = _DOUBLE_QUOTED_SPECIAL.sub(r"\\\g<0>", secret)
            for written in (
                json.dumps(secret, ensure_ascii=False)[1:-1],
                secret.replace("'", "'\"'\"'"),
                bare,
                double,
                json.dumps(bare, ensure_ascii=False)[1:-1],
                json.dumps(double, ensure_ascii=False)[1:-1],
            ):
                if written != secret and written not in kinds:
                    kinds[written] = kind
                    aliases[written] = secret

        def alternative(secret: str) -> str:
            if words and secret in words:
                return rf"""(?<![^\s'"]){re.escape(secret)}(?![^\s'"])"""
            return re.escape(secret)

        # A long secret (a quoted word holding a pasted file) is replaced as plain text,
        # longest first: compiled into the regex, 60 KB of it took 0.2 - 0.4 s. None is
        # short enough to lie inside a tag.
        long = sorted(
            (s for s in kinds if len(s) > _LONG_SECRET and not (words and s in words)),
            key=len,
            reverse=True,
        )
        replaced_long = [(s, self.tag(kinds.pop(s), aliases.get(s, s))) for s in long]
        # Longest first: a secret that holds another is replaced whole.
        regex = (
            re.compile("|".join(alternative(s) for s in sorted(kinds, key=len, reverse=True)))
            if kinds
            else None
        )

        def rebuild(item: Any) -> Any:
            if isinstance(item, str):
                for secret, tag in replaced_long:
                    if secret in item:
                        item = item.replace(secret, tag)
                if regex is None or regex.search(item) is None:
                    return item
                return self._substitute(regex, kinds, item, aliases=aliases)
            if isinstance(item, dict):
                out = {key: rebuild(sub) for key, sub in item.items()}
                if all(out[key] is sub for key, sub in item.items()):
                    return item
                return out
            if isinstance(item, list | tuple):
                items = [rebuild(sub) for sub in item]
                if all(new is sub for new, sub in zip(items, item, strict=True)):
                    return item
                return items
            return item

        return rebuild

    def _cut_short(self, text: str, found: dict[str, str]) -> str:
        """``text`` with the start of a secret in ``found`` tagged where a label cut it
        short (``shorten`` in ``sidecar.normalise.shell_context``: its first characters,
        then '…'), as a reason quotes a long command; ``text`` itself when there is none.
        Only a label's length of text before each of the first few '…' is looked at."""
        if _ELLIPSIS not in text:
            return text
        # Longest first; one cut short needs a character more than the shortest spread.
        secrets = sorted(
            (s for s in found if len(s) > MIN_SPREAD_CHARACTERS), key=len, reverse=True
        )
        pieces: list[str] = []
        done = 0
        for ellipsis in itertools.islice(_ELLIPSIS_AT.finditer(text), _MOST_CUTS):
            end = ellipsis.start()
            for secret in secrets:
                longest = min(len(secret) - 1, end - done, _LONGEST_CUT)
                cut = next(
                    (
                        length
                        for length in range(longest, MIN_SPREAD_CHARACTERS - 1, -1)
                        if text.startswith(secret[:length], end - length)
                    ),
                    None,
                )
                if cut is not None:
                    pieces += (text[done : end - cut], self.tag(found[secret], secret))
                    done = end
                    break
        if not pieces:
            return text
        pieces.append(text[done:])
        return "".join(pieces)


def _put_back(original: dict[Any, Any], redacted: dict[Any, Any], late: dict[str, str]) -> dict:
    """``original``'s fields in its order: those of ``late`` from it, the others from
    ``redacted`` (``original`` without them, redacted; a key of it may itself have been
    redacted, so they are taken in order rather than by name)."""
    others = iter(redacted.items())
    out: dict[Any, Any] = {}
    for key in original:
        if key in late:
            out[key] = late[key]
        else:
            new_key, value = next(others)
            out[new_key] = value
    return out


def _matches(
    regex: re.Pattern[str], values: re.Pattern[str] | None, text: str, start: int, end: int
) -> Iterator[re.Match[str]]:
    """The matches of ``regex`` in ``text[start:end]``; with ``values``, the matches of
    ``values`` inside each of them, after its group 1. Each match of ``regex`` is read
    once, so a command holding thousands of values is read in linear time.

    A value that the end of its command cuts (an unquoted ';', '&' or '|' in it: ``A=a;b``)
    is taken to the end of its word, as ``_ARGUMENT`` takes a program's argument, and
    the next command is looked for after it."""
    if values is None:
        yield from regex.finditer(text, start, end)
        return
    position = start
    while (command := regex.search(text, position, end)) is not None:
        position = command.end()
        for value in values.finditer(text, command.end(1), command.end()):
            if value.end() == command.end() < end:
                word = values.match(text, value.start(), end)
                if word is not None and word.end() > value.end():
                    value = word
            yield value
            position = max(position, value.end())


def _collect_strings(
    value: Any, texts: list[str], braces: list[Found], budget: _Budget, secret_data: bool = False
) -> bool:
    """Every string value and string key, depth first, in ``Redactor._value`` order.

    Returns whether a key names a secret, or an option in a list is followed by its
    value, or (with ``secret_data``, see ``Redactor._value``) a Secret's data is carried:
    those values are replaced whatever they hold. The secrets that a list shows
    only once its brace lists are expanded go into ``braces``.
    """
    if isinstance(value, str):
        texts.append(value)
        return secret_data and _SECRET_DATA_TEXT.search(value) is not None
    secret_key = False
    if isinstance(value, dict):
        secret_key = pair_kind(value) is not None or is_secret_object(value)
        secret_key = secret_key or (secret_data and holds_secret_data(value))
        request_on_secrets = is_secrets_request(value)
        for key, item in value.items():
            if isinstance(key, str):
                texts.append(key)
                secret_key = secret_key or secret_key_kind(key) is not None
            in_data = secret_data or (request_on_secrets and key == _REQUEST_CONTEXT)
            secret_key = _collect_strings(item, texts, braces, budget, in_data) or secret_key
    elif isinstance(value, list | tuple):
        for item in value:
            secret_key = _collect_strings(item, texts, braces, budget, secret_data) or secret_key
        secret_key = secret_key or bool(_argv_secrets(value))
        braces += _brace_secrets(value, budget)
    return secret_key
