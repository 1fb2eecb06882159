# Copyright (c) multijhub developers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import annotations

DOCUMENTATION = r"""
---
name: answers
type: stdout
short_description: Ansible's default output, with answers printed as answers
version_added: "0.1.0"
description:
  - Ansible's default stdout callback (every option of it applies), with two differences for
    tasks that carry one of two tags, so that a playbook that answers a question (C(where.yml))
    reads as an answer while keeping its exit status.
  - A task tagged C(multijhub_answer) prints its C(msg) plainly, after the play recap, as the
    last lines of the output, whether the task succeeded or failed (a failed one still sets the
    exit status, e.g. 2 for bad usage).
  - A task tagged C(multijhub_exit_status) prints nothing when it fails or makes its host
    unreachable; it exists to give ansible-playbook its exit status (2 not running, 4 unknown),
    which the answer has already explained.
  - Every other task is shown exactly as the default callback shows it, so site.yml and other
    playbooks look as usual. Real failures (a hub that does not answer) are shown as usual too.
extends_documentation_fragment:
  - default_callback
  - result_format_callback
requirements:
  - set as the stdout callback, for example C(stdout_callback = multijhub.cluster.answers) in
    ansible.cfg or C(ANSIBLE_STDOUT_CALLBACK=multijhub.cluster.answers)
"""

from typing import Any

from ansible.plugins.callback.default import CallbackModule as DefaultCallback

ANSWER_TAG = "multijhub_answer"
EXIT_STATUS_TAG = "multijhub_exit_status"


def _tagged(result: Any, tag: str) -> bool:  # noqa: ANN401 - ansible's task result
    return tag in (getattr(result.task, "tags", None) or [])


def _lines(msg: Any) -> list[str]:  # noqa: ANN401 - a task's msg: a string or a list
    if isinstance(msg, (list, tuple)):
        return [str(line) for line in msg]
    return str(msg).splitlines() if msg is not None else []


class CallbackModule(DefaultCallback):
    """The default callback; answers last and plain, exit-status tasks silent."""

    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "stdout"
    CALLBACK_NAME = "multijhub.cluster.answers"

    def __init__(self) -> None:
        super().__init__()
        self._answers: list[str] = []

    def _keep(self, result: Any) -> bool:  # noqa: ANN401
        if _tagged(result, ANSWER_TAG):
            self._answers.extend(_lines(result.result.get("msg")))
            return True
        return False

    def v2_runner_on_ok(self, result: Any) -> None:  # noqa: ANN401
        """An answer is kept for the end; anything else as the default callback shows it."""
        if not self._keep(result):
            super().v2_runner_on_ok(result)

    def v2_runner_on_failed(self, result: Any, ignore_errors: bool = False) -> None:  # noqa: ANN401
        """A failed answer is kept for the end; a failed exit-status task is silent."""
        if self._keep(result) or _tagged(result, EXIT_STATUS_TAG):
            return
        super().v2_runner_on_failed(result, ignore_errors=ignore_errors)

    def v2_runner_on_unreachable(self, result: Any) -> None:  # noqa: ANN401
        """An exit-status task that makes its host unreachable (exit status 4) is silent."""
        if _tagged(result, EXIT_STATUS_TAG):
            return
        super().v2_runner_on_unreachable(result)

    def v2_playbook_on_stats(self, stats: Any) -> None:  # noqa: ANN401
        """The recap, then the answers: the last lines an operator reads."""
        super().v2_playbook_on_stats(stats)
        if self._answers:
            self._display.display("")
            for line in self._answers:
                self._display.display(line)
