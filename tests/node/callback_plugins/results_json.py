# Test helper (not shipped): print one JSON document with every task result and the stats, like
# ansible.posix.json, which ansible-core does not include.
from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
name: results_json
type: stdout
short_description: One JSON document with all task results (virtfleet tests only)
description:
  - Collects plays, tasks and per-host results and prints them with the stats at the end.
'''

import json

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'stdout'
    CALLBACK_NAME = 'results_json'

    def __init__(self, *args, **kwargs):
        super(CallbackModule, self).__init__(*args, **kwargs)
        self.plays = []

    def v2_playbook_on_play_start(self, play):
        self.plays.append({'play': {'name': play.get_name()}, 'tasks': []})

    def _task_start(self, task, **kwargs):
        self.plays[-1]['tasks'].append({'task': {'name': task.get_name()}, 'hosts': {}})

    v2_playbook_on_task_start = _task_start
    v2_playbook_on_handler_task_start = _task_start

    def _record(self, result, **kwargs):
        data = self._convert_result(result)
        self.plays[-1]['tasks'][-1]['hosts'][result._host.get_name()] = data
        return data

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._record(result).update(failed=True, ignore_errors=ignore_errors)

    def v2_runner_on_skipped(self, result):
        self._record(result).update(skipped=True)

    def v2_runner_on_unreachable(self, result):
        self._record(result).update(unreachable=True)

    def _convert_result(self, result):
        # Round-trip through the AnsibleJSONEncoder so tagged/unsafe values become plain JSON.
        from ansible.parsing.ajson import AnsibleJSONEncoder
        return json.loads(json.dumps(result._result, cls=AnsibleJSONEncoder))

    v2_runner_on_ok = _record

    def v2_playbook_on_stats(self, stats):
        hosts = sorted(stats.processed.keys())
        summary = dict((h, stats.summarize(h)) for h in hosts)
        from ansible.parsing.ajson import AnsibleJSONEncoder
        self._display.display(json.dumps({'plays': self.plays, 'stats': summary}, cls=AnsibleJSONEncoder,
                                         sort_keys=True))
