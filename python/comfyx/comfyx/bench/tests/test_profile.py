"""The warm restart's py-spy stacks summed per function (``comfyx bench --profile-warm-restart``)."""

from comfyx.bench import profile

STACKS = """\
<module> (main.py:1);start_all (main.py:300) 40
Thread.run (threading.py:975);prompt_worker (main.py:180);execute (execution.py:600);sample (samplers.py:10) 30
Thread.run (threading.py:975);prompt_worker (main.py:180);execute (execution.py:600);load (model_management.py:5) 9
Thread.run (threading.py:975);prompt_worker (main.py:180);execute (execution.py:600);recurse (a.py:1);recurse (a.py:1) 1
Thread.run (threading.py:975);other_worker (x.py:1) 7
Thread.run (threading.py:975);prompt_worker (main.py:180);PromptQueue.get (execution.py:1000);wait (t.py:1) 500
"""


def test_only_the_prompt_workers_stacks_count_and_a_recursive_function_once_per_stack():
    total, per_frame, own = profile.inclusive_samples(STACKS)
    assert total == 40  # not the main thread's 40, not another thread's 7, not the wait for a prompt
    assert per_frame["prompt_worker (main.py:180)"] == 40 and per_frame["execute (execution.py:600)"] == 40
    assert per_frame["sample (samplers.py:10)"] == 30 and per_frame["load (model_management.py:5)"] == 9
    assert per_frame["recurse (a.py:1)"] == 1
    assert "Thread.run (threading.py:975)" not in per_frame  # the frames above the worker's are not its time
    assert own == {"sample (samplers.py:10)": 30, "load (model_management.py:5)": 9, "recurse (a.py:1)": 1}


def test_the_summary_gives_shares_and_seconds_at_the_sampling_rate():
    lines = profile.summary(STACKS, rate=10).splitlines()
    assert lines[0].startswith("40 samples (4.0 s) in the thread running prompt_worker")
    assert lines[1] == "# on the stack (inclusive)"
    assert lines[4].split() == ["75.0%", "3.00", "s", "sample", "(samplers.py:10)"]
    own = lines[lines.index("# innermost (own time)") + 1:]
    assert [line.split()[-2] for line in own] == ["sample", "load", "recurse"]
    assert profile.summary("", rate=10) == "no samples in a thread running prompt_worker\n"


def test_failed_reads_are_said_first_with_the_time_they_leave_unplaced():
    output = "py-spy> Stopped sampling because Control-C pressed\npy-spy> Wrote raw flamegraph data to 'x'. " \
             "Samples: 4113 Errors: 1598\n"
    assert profile.failed_reads(output) == (4113, 1598)
    assert profile.failed_reads("no summary: py-spy was killed") is None
    lines = profile.summary(STACKS, rate=10, reads=(4113, 1598)).splitlines()
    assert lines[0].startswith("py-spy failed 1598 of its 5711 reads of the server (159.8 s at 10 Hz")
    assert lines[1].startswith("40 samples (4.0 s)")
    assert profile.summary(STACKS, rate=10, reads=(40, 0)).splitlines()[0].startswith("40 samples")
