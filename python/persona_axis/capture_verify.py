"""Capture: cross-checking each transcript record's system prompt (and question) against the role data
the transcripts were generated from."""
from __future__ import annotations

import sys
from pathlib import Path

from . import transcripts as transcripts_mod
from .errors import CaptureError
from .roles import RoleDataError, fill_system_prompt, load_questions, load_role


class PromptVerifier:
    """Cross-checks each record's system prompt (and question, with a questions file) against the role
    data. Mismatch: CaptureError, or (``strict=False``) a warning and the record's own texts are used."""

    def __init__(self, roles_dir: str | None, questions_file: str | None, display_name: str | None,
                 strict: bool = True):
        self.dir = Path(roles_dir) if roles_dir else None
        if self.dir is not None and not self.dir.is_dir():
            raise CaptureError(f"{self.dir}: --roles-dir not found (give the roles directory the transcripts "
                               "were generated from, or leave the flag out to skip the check)")
        self.questions = [q.text for q in load_questions(questions_file)] if questions_file else None
        self.display_name = display_name
        self.strict = strict
        self.warnings = 0

    def _fail(self, msg: str) -> None:
        if self.strict:
            raise CaptureError(msg + "; fix the transcripts or pass --no-verify-prompts to capture them as recorded")
        self.warnings += 1
        if self.warnings <= 5:
            print(f"warning: {msg}", file=sys.stderr)

    def check(self, role: str, path: Path, records: list[dict]) -> None:
        if self.dir is None:
            return
        role_file = self.dir / f"{role}.json"
        if not role_file.exists():
            print(f"capture: {role}: no {role_file.name} in {self.dir}: its prompts are not checked", file=sys.stderr)
            return
        try:
            rd = load_role(role_file)
        except RoleDataError as e:
            raise CaptureError(str(e)) from None
        for rec in records:
            key = transcripts_mod.record_key(rec)
            spi, qi = key[0], key[1]
            where = f"{path}: record {key}"
            if not 0 <= spi < len(rd.instructions):
                self._fail(f"{where}: system_prompt_idx {spi} out of range for {role_file} ({len(rd.instructions)} prompts)")
                continue
            template = rd.instructions[spi]
            sp = rec["system_prompt"]
            if self.display_name is not None:
                ok = sp == fill_system_prompt(template, self.display_name)
            elif "{model_name}" in template:
                head, _, tail = template.partition("{model_name}")
                ok = sp.startswith(head) and sp.endswith(tail.replace("{model_name}", "")) and len(sp) >= len(head) + len(tail)
            else:
                ok = sp == template
            if not ok:
                self._fail(f"{where}: system_prompt differs from {role_file} instruction[{spi}]")
            if self.questions is not None:
                if not 0 <= qi < len(self.questions) or rec["question"] != self.questions[qi]:
                    self._fail(f"{where}: question differs from the questions file's question {qi}")

