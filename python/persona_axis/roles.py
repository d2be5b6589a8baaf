"""Role files, the shared question set, and the enumeration of generation requests.

Role file format (the paper's): ``{"instruction": [{"pos": "..."}, ...], "questions": [...],
"eval_prompt": "... {question} ... {answer} ..."}``. ``default.json`` holds neutral system prompts
(one may be empty: then no system turn at all; one may contain ``{model_name}``) and no eval prompt.
Every file is validated before any model work, and errors name the file and the key.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from .errors import InputError
from .jsonl import read_json_lines

DEFAULT_ROLE = "default"


class RoleDataError(InputError):
    """Bad role file or questions file; the message names the file (and line or key) and the fix."""


@dataclass(frozen=True)
class Role:
    name: str
    instructions: tuple[str, ...]
    questions: tuple[str, ...]
    eval_prompt: str | None
    path: str


@dataclass(frozen=True)
class Question:
    id: int | str
    text: str


@dataclass(frozen=True)
class Request:
    """One generation: (role, system prompt, question, rollout), with the exact texts used."""

    role: str
    system_prompt_idx: int
    question_idx: int
    rollout_idx: int
    question_id: int | str
    system_prompt: str  # with {model_name} filled; "" means no system turn
    question: str

    @property
    def key(self) -> tuple[int, int, int]:
        return (self.system_prompt_idx, self.question_idx, self.rollout_idx)


def load_role(path: str | os.PathLike) -> Role:
    path = Path(path)
    name = path.stem
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except json.JSONDecodeError as e:
        raise RoleDataError(f"{path}:{e.lineno}:{e.colno}: invalid JSON: {e.msg}") from None
    except OSError as e:
        raise RoleDataError(f"{path}: cannot read role file: {e.strerror}") from None
    if not isinstance(data, dict):
        raise RoleDataError(f"{path}: expected a JSON object with 'instruction', 'questions', 'eval_prompt'")
    instr = data.get("instruction")
    if not isinstance(instr, list) or not instr:
        raise RoleDataError(f"{path}: key 'instruction' must be a non-empty list of {{\"pos\": \"...\"}} objects")
    instructions = []
    for i, item in enumerate(instr):
        if not isinstance(item, dict) or not isinstance(item.get("pos"), str):
            raise RoleDataError(f"{path}: instruction[{i}] must be an object with a string 'pos'")
        instructions.append(item["pos"])
    questions = data.get("questions", [])
    if not isinstance(questions, list) or not all(isinstance(q, str) and q.strip() for q in questions):
        raise RoleDataError(f"{path}: key 'questions' must be a list of non-empty strings")
    eval_prompt = data.get("eval_prompt")
    if name != DEFAULT_ROLE:
        if not isinstance(eval_prompt, str) or "{question}" not in eval_prompt or "{answer}" not in eval_prompt:
            raise RoleDataError(
                f"{path}: key 'eval_prompt' must be a string containing the placeholders {{question}} and {{answer}}"
            )
    elif eval_prompt is not None and not isinstance(eval_prompt, str):
        raise RoleDataError(f"{path}: key 'eval_prompt' must be a string if present")
    return Role(name, tuple(instructions), tuple(questions), eval_prompt, str(path))


def list_role_names(roles_dir: str | os.PathLike) -> list[str]:
    d = Path(roles_dir)
    if not d.is_dir():
        raise RoleDataError(f"{d}: roles directory not found (set --roles-dir / roles_dir in params)")
    return sorted(p.stem for p in d.glob("*.json"))


def load_roles(roles_dir: str | os.PathLike, names: list[str] | None = None) -> dict[str, Role]:
    """Load and validate roles (all files when ``names`` is None), sorted by name."""
    available = list_role_names(roles_dir)
    if names:
        unknown = [n for n in names if n not in available]
        if unknown:
            raise RoleDataError(
                f"{roles_dir}: unknown role(s) {', '.join(unknown)}; available: {', '.join(available[:20])}"
                + (" ..." if len(available) > 20 else "")
            )
        chosen = sorted(set(names))
    else:
        chosen = available
    if not chosen:
        raise RoleDataError(f"{roles_dir}: no role files (*.json) found")
    return {n: load_role(Path(roles_dir) / f"{n}.json") for n in chosen}


def load_questions(path: str | os.PathLike) -> list[Question]:
    """The shared question set: JSONL lines ``{"question": "...", "id": ...}``."""
    path = Path(path)
    out: list[Question] = []
    seen: set = set()
    lines = read_json_lines(
        path, unreadable=lambda e: RoleDataError(f"{path}: cannot read questions file: {e.strerror}"),
        invalid=lambda lineno, e: RoleDataError(f"{path}:{lineno}: invalid JSON: {getattr(e, 'msg', e)}"))
    for lineno, obj in lines:
        if not isinstance(obj, dict) or not isinstance(obj.get("question"), str) or "id" not in obj:
            raise RoleDataError(f'{path}:{lineno}: expected {{"question": "...", "id": ...}}')
        if obj["id"] in seen:
            raise RoleDataError(f"{path}:{lineno}: duplicate question id {obj['id']!r}")
        seen.add(obj["id"])
        out.append(Question(obj["id"], obj["question"]))
    if not out:
        raise RoleDataError(f"{path}: no questions")
    return out


def fill_system_prompt(text: str, model_display_name: str) -> str:
    """Fill ``{model_name}`` (plain replacement: other braces in a prompt are left alone)."""
    return text.replace("{model_name}", model_display_name)


def role_questions(role: Role, shared: list[Question] | None, question_count: int | None) -> list[Question]:
    """The questions asked of a role: the shared set, or (``shared`` None) the role's own questions."""
    if shared is not None:
        qs = shared
    else:
        if not role.questions:
            raise RoleDataError(
                f"{role.path}: role '{role.name}' has no 'questions' of its own; use a shared questions file "
                "(--questions FILE) or add a 'questions' list to this file"
            )
        qs = [Question(i, q) for i, q in enumerate(role.questions)]
    return list(qs[:question_count]) if question_count else list(qs)


def build_requests(
    roles: dict[str, Role],
    shared_questions: list[Question] | None,
    *,
    question_count: int | None = None,
    num_rollouts: int = 1,
    model_display_name: str = "an AI assistant",
) -> list[Request]:
    """Every (role, system prompt, question, rollout) in a stable order."""
    if num_rollouts < 1:
        raise RoleDataError("num_rollouts must be >= 1")
    reqs: list[Request] = []
    for name in sorted(roles):
        role = roles[name]
        qs = role_questions(role, shared_questions, question_count)
        for spi, sp in enumerate(role.instructions):
            filled = fill_system_prompt(sp, model_display_name)
            for qi, q in enumerate(qs):
                for ri in range(num_rollouts):
                    reqs.append(Request(name, spi, qi, ri, q.id, filled, q.text))
    return reqs
