"""The claim protocol, explored exhaustively (claim_model.py): every
interleaving of 2 or 3 agents' atomic operations on a share that offers
exclusive create, read, write, unlink and rename-with-replace, crashes and
lease-outliving stalls included, over two incidents. The protocol of
agent/claim.c keeps every invariant; the one of main at 5ad7536 (rename
aside, compare, put back with RENAME_NOREPLACE, which the share refuses, so
the claim is unlinked) breaks them, and the checker says how. So do the
same steps when a name's exclusive create is a lookup and then a create
that empties a name made meanwhile (an O_CREAT|O_EXCL open through
smbnetfs): each name is therefore a folder, whose create is atomic."""

import pytest

import claim_model as model


@pytest.mark.parametrize("agents,crashes,premature", [
    (2, 1, 1),   # one owner may die, one live owner may be taken over by a stall
    (2, 1, 2),
    (3, 2, 0),   # three agents, two of them die at any step
    (3, 1, 1),   # three agents, one death and one stalled owner taken over
])
def test_the_protocol_keeps_every_invariant(agents, crashes, premature):
    states, bad = model.explore("new", agents, crashes, premature)
    print(f"new protocol: {agents} agents, {crashes} crash(es), {premature} stall(s) past "
          f"the expiry: {states} states explored")
    assert bad is None, f"{bad[0]}\n" + "\n".join(bad[1])
    assert states > 1000


@pytest.mark.parametrize("checks,finding", [
    (("I3",), "I3: agent 1 deleted ('stale', 1) made by agent 0 (alive)"),  # finding 1
    (("I1",), "I1: episode 1 restarted 2 times"),                             # finding 2
    (("I2",), "I2: "),                                                        # finding 3
])
def test_the_checker_catches_todays_protocol(checks, finding):
    states, bad = model.explore("old", 2, 1, 1, checks=checks)
    print(f"old protocol, {checks}: {states} states explored; {bad and bad[0]}")
    assert bad is not None and bad[0].startswith(finding), bad
    print("\n".join("   " + step for step in bad[1]))


@pytest.mark.parametrize("agents,crashes,premature,finding", [
    (2, 0, 0, "I1: episode 1 restarted 2 times"),      # two owners of one name
    (2, 1, 0, "I2: "),                                 # the restart lost in silence
])
def test_the_checker_catches_a_create_that_is_a_lookup_then_a_truncating_create(
        agents, crashes, premature, finding):
    states, bad = model.explore("new", agents, crashes, premature, create="lookup")
    print(f"names made by lookup + O_TRUNC create (smbnetfs's O_EXCL): {states} states "
          f"explored; {bad and bad[0]}")
    assert bad is not None and bad[0].startswith(finding), bad
    print("\n".join("   " + step for step in bad[1]))
