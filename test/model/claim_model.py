"""An explicit-state model of the incident claim (agent/claim.c,
agent/incident.c, the hook mark in agent/hookq.c's caller), explored
exhaustively.

The share offers exactly: exclusive create, read, write (through a handle,
to the file it was opened on, linked or not), unlink, and rename with
replace. Each agent's step below is ONE of those operations (or one act on
the site: a removal, the hook's spawn); any interleaving of the agents'
steps is explored, which is a stall of any length before and after every
step. Any agent may crash before or after any step (at most agents - 1 of
them). An owner's lease may run out while it is stalled: a taker may take
over a live owner's claim too (PREMATURE times), besides every dead owner's.

The world: a site with one stuck deployment at a time (an episode), two
episodes in turn. An episode's work is its removal and then one restart.

Invariants, checked on every state or every terminal state:
  I1 at most one restart per episode (and so per incident, site scope);
  I2 a restart is lost only with a warning: when an episode had a removal
     and no restart, every live agent has warned about its incident;
  I3 no agent deletes a protocol file another agent made, unless that
     file is below a claim of its own whose content was written (it is
     superseded, and what it said is inherited);
  I4 an episode is never left with work to do once every live agent has
     nothing more to do (a terminal state).

Two protocols: NEW (what agent/claim.c does now, step names as in its
comments) and OLD (main at 5ad7536: one claim name, taken over by rename
aside / compare / put back with RENAME_NOREPLACE, which the share refuses,
so the fallback unlinks; the hook mark written into the claim)."""

import collections

# ---- state -------------------------------------------------------------------
#
# files: sorted tuple of (name, obj, maker, content); name is ("C", n) a claim,
#   ("H", incident) a hook marker, ("claim",) / ("stale", a) the old names.
# agent: (pc, loc, alive, warned) with loc a tuple (see Loc) and warned a
#   frozenset of incidents warned about.
# world: see World.

Loc = collections.namedtuple("Loc", "t n X began m k obs seen obj hook")
EMPTY_LOC = Loc(0, 0, None, False, 0, 0, False, None, None, False)
World = collections.namedtuple(
    "World", "target episode removed_in restarts inc_ep crashes premature next_obj")


class Violation(Exception):
    pass


# The invariants checked (explore() sets them): the old protocol breaks I3
# first, so the other findings are shown with it left out.
ENABLED = {"I1", "I2", "I3", "I4"}


def violation(kind, text):
    if kind in ENABLED:
        raise Violation(f"{kind}: {text}")


def fget(files, name):
    for f in files:
        if f[0] == name:
            return f
    return None


def _name(f):
    """Files in order of their names (unique, and of comparable kinds): one
    order for one set of files, cheaper than ordering by repr()."""
    return f[0]


def fput(files, name, obj, maker, content):
    rest = [f for f in files if f[0] != name]
    rest.append((name, obj, maker, content))
    return tuple(sorted(rest, key=_name))


def fdel(files, name):
    return tuple(f for f in files if f[0] != name)


def fwrite_obj(files, obj, content):
    """A write through a handle: to the file it was opened on; a file no
    name holds any more takes it and nobody sees it."""
    return tuple((f[0], f[1], f[2], content) if f[1] == obj else f for f in files)


def bump(d, key, by=1):
    dd = dict(d)
    dd[key] = dd.get(key, 0) + by
    return tuple(sorted(dd.items()))


def claims(files):
    return sorted(f[0][1] for f in files if f[0][0] == "C")


def top_claim(files):
    c = claims(files)
    return fget(files, ("C", c[-1])) if c else None


def check_delete(files, agents, me, name, my_claim_n):
    """I3: a file made by another is deleted only when it is a claim below
    one this agent made and wrote."""
    f = fget(files, name)
    if f is None or f[2] == me:
        return
    # my_claim_n: the claim this agent made and wrote (0: none); whatever is
    # below it carries no authority and was inherited.
    if name[0] == "C" and my_claim_n and name[1] < my_claim_n:
        return
    violation("I3", f"agent {me} deleted {name} made by agent {f[2]}"
              f" ({'alive' if agents[f[2]][2] else 'dead'})")


# ---- the protocol of agent/claim.c ------------------------------------------

def maker_dead(agents, maker):
    return not agents[maker][2]


def may_take_over(agents, world, top):
    """The taker watched the top claim unchanged for claim_expiry: always
    so for a dead owner; for a live one only by a stall (a budget)."""
    return maker_dead(agents, top[2]) or world.premature > 0


def marker_lost(files, agents, X):
    """incident_restart_lost(): X's hook marker has no end, and its maker
    is not the live holder of X (the claim on top is another incident's,
    released, another agent's, or its owner is dead)."""
    h = fget(files, ("H", X))
    if h is None or h[3] == "ended":
        return False
    top = top_claim(files)
    if top is None or top[3] is None:
        return True
    tX, state, _ = top[3]
    return tX != X or state == "released" or top[2] != h[2] or maker_dead(agents, top[2])


def markers_lost(files, agents):
    return {f[0][1] for f in files if f[0][0] == "H" and marker_lost(files, agents, f[0][1])}


def new_steps(state, me):
    files, agents, world = state
    pc, loc, alive, warned = agents[me]
    if not alive:
        return

    def go(pc2, loc2=loc, files2=files, world2=world, warned2=warned):
        ag = list(agents)
        ag[me] = (pc2, loc2, True, warned2)
        return (files2, tuple(ag), world2)

    def lost():
        return go("idle", EMPTY_LOC._replace(k=loc.k))

    if pc == "idle":
        if loc.obs:
            return  # nothing changed since the last look
        top = top_claim(files)
        w = warned | markers_lost(files, agents)
        loc2 = loc._replace(obs=True)
        t = top[0][1] if top else 0
        held = top is not None and (top[3] is None or top[3][1] == "held")
        if held and top[2] != me:
            if may_take_over(agents, world, top):
                prem = world.premature - (0 if maker_dead(agents, top[2]) else 1)
                yield "claim.look(take over)", go("create", loc2._replace(t=t), world2=world._replace(premature=prem), warned2=w)
            # A dead owner's claim is always waited out in the end
            # (fairness); a live one's may stay renewed.
            if not maker_dead(agents, top[2]):
                yield "claim.look(others')", go("idle", loc2, warned2=w)
            return
        if world.target:
            yield "claim.look(new)", go("create", loc2._replace(t=t), warned2=w)
            return
        yield "claim.look(nothing)", go("idle", loc2, warned2=w)
        return

    if pc == "create":  # claim.create: O_CREAT|O_EXCL of name t+1
        name = ("C", loc.t + 1)
        if fget(files, name):
            yield "claim.create(EEXIST)", go("idle", loc._replace(obs=False))
            return
        f2 = fput(files, name, world.next_obj, me, None)
        yield "claim.create", go("verify", loc._replace(n=loc.t + 1, m=loc.t, obj=world.next_obj),
                                 files2=f2, world2=world._replace(next_obj=world.next_obj + 1))
        return

    if pc == "verify":  # claim.verify: list the names; one above ours: a stale look
        names = claims(files)
        if any(n > loc.n for n in names):
            yield "claim.verify(stale: own name removed)", go(
                "idle", EMPTY_LOC._replace(k=loc.k), files2=fdel(files, ("C", loc.n)))
            return
        yield "claim.verify", go("inherit", loc._replace(seen=tuple(n for n in names if n < loc.n)))
        return

    if pc == "inherit":  # claim.inherit: the highest name listed below ours, read
        def new_incident(label):
            X = (me, loc.k)
            return label, go("write", loc._replace(X=X, began=False, k=loc.k + 1, seen=None),
                             world2=world._replace(inc_ep=bump(world.inc_ep, X, world.episode)))
        if not loc.seen:
            yield new_incident("claim.inherit(new)")
            return
        f = fget(files, ("C", loc.seen[-1]))
        if f is None:
            # Pruned by an owner above: it wrote what it inherited first.
            names = tuple(n for n in claims(files) if n < loc.n)
            yield "claim.inherit(relist)", go("inherit", loc._replace(seen=names))
            return
        if f[3] is None:
            yield "claim.inherit(down)", go("inherit", loc._replace(seen=loc.seen[:-1]))
            return
        X, st, began = f[3]
        if st == "released":
            yield new_incident("claim.inherit(released)")
            return
        yield "claim.inherit", go("write", loc._replace(X=X, began=began, seen=None))
        return

    if pc == "write":  # claim.write
        f2 = fwrite_obj(files, loc.obj, (loc.X, "held", loc.began))
        yield "claim.write", go("prune", files2=f2)
        return

    if pc == "prune":  # claim.prune: the lowest name below ours
        below = [n for n in claims(files) if n < loc.n]
        if not below:
            yield "claim.prune(done)", go("check")
            return
        check_delete(files, agents, me, ("C", below[0]), loc.n)
        yield "claim.prune", go("prune", files2=fdel(files, ("C", below[0])))
        return

    if pc == "check":  # claim.check: ours, and nobody above
        f = fget(files, ("C", loc.n))
        if f is None or f[1] != loc.obj or f[3] != (loc.X, "held", loc.began) or \
                fget(files, ("C", loc.n + 1)):
            yield "claim.check(lost)", lost()
            return
        if world.target and not loc.began:
            yield "claim.check", go("intent")
        elif world.target:
            yield "claim.check", go("remove", loc._replace(m=world.episode))
        elif loc.began and not loc.hook:
            yield "claim.check", go("mark")
        else:
            yield "claim.check", go("release")
        return

    if pc == "intent":  # claim.intent: "a cleanup began" before any removal
        f2 = fwrite_obj(files, loc.obj, (loc.X, "held", True))
        yield "claim.intent", go("check", loc._replace(began=True), files2=f2)
        return

    if pc == "remove":  # the cleanup's removal (checked just before: claim.check)
        if world.episode != loc.m:
            # Another deployment than the one judged: the evidence
            # (evidence.c) no longer holds, nothing is removed.
            yield "cleanup.remove(evidence changed)", go("check", loc._replace(m=0))
            return
        w2 = world._replace(target=0, removed_in=world.removed_in | {world.episode})
        yield "cleanup.remove", go("check", loc._replace(m=0), world2=w2)
        return

    if pc == "mark":  # hook.mark: O_CREAT|O_EXCL of the incident's marker
        name = ("H", loc.X)
        h = fget(files, name)
        if h:
            w = warned | {loc.X} if h[3] != "ended" else warned
            yield "hook.mark(EEXIST)", go("check", loc._replace(hook=True), warned2=w)
            return
        f2 = fput(files, name, world.next_obj, me, None)
        yield "hook.mark", go("started", loc._replace(hook=True), files2=f2,
                              world2=world._replace(next_obj=world.next_obj + 1))
        return

    if pc == "started":  # hook.started: the marker's content
        yield "hook.started", go("spawn", files2=fput(files, ("H", loc.X), fget(files, ("H", loc.X))[1], me, "started"))
        return

    if pc == "spawn":  # hook.spawn: the restart
        yield "hook.spawn", go("end", world2=world._replace(restarts=bump(world.restarts, loc.X)))
        return

    if pc == "end":  # hook.end: the marker says the hook ended
        yield "hook.end", go("check", files2=fput(files, ("H", loc.X), fget(files, ("H", loc.X))[1], me, "ended"))
        return

    if pc == "release":  # claim.release: "released" written into our claim
        f2 = fwrite_obj(files, loc.obj, (loc.X, "released", loc.began))
        yield "claim.release", go("idle", EMPTY_LOC._replace(k=loc.k), files2=f2)
        return
    raise AssertionError(pc)


# ---- main at 5ad7536 ---------------------------------------------------------

OLD_CLAIM = ("claim",)


def old_steps(state, me):
    files, agents, world = state
    pc, loc, alive, warned = agents[me]
    if not alive:
        return

    def go(pc2, loc2=loc, files2=files, world2=world):
        ag = list(agents)
        ag[me] = (pc2, loc2, True, warned)
        return (files2, tuple(ag), world2)

    def lost():
        return go("idle", EMPTY_LOC._replace(k=loc.k))

    def ours():
        f = fget(files, OLD_CLAIM)
        return f is not None and f[1] == loc.obj

    # A renewal: the owner rewrites its claim (a counter), at any time.
    if pc in ("check", "remove", "record") and loc.m < 1:
        c = loc.seen
        yield "renew", go(pc, loc._replace(m=loc.m + 1),
                          files2=fwrite_obj(files, loc.obj, c[:3] + (c[3] + 1,)))
        # (loc.seen holds our own content while we hold the claim)

    if pc == "idle":
        if loc.obs:
            return
        f = fget(files, OLD_CLAIM)
        loc2 = loc._replace(obs=True)
        if f is None:
            if world.target:
                yield "look(new)", go("create", loc2)
            else:
                yield "look(nothing)", go("idle", loc2)
            return
        if f[2] != me and may_take_over(agents, world, f):
            prem = world.premature - (0 if maker_dead(agents, f[2]) else 1)
            yield "look(take over)", go("aside", loc2._replace(seen=f), world2=world._replace(premature=prem))
        if f[2] == me or not maker_dead(agents, f[2]):
            yield "look(others')", go("idle", loc2)
        return

    if pc == "create":
        if fget(files, OLD_CLAIM):
            yield "create(EEXIST)", go("idle", loc._replace(obs=False))
            return
        X = (me, loc.k)
        c = (X, False, False, 0)
        f2 = fput(files, OLD_CLAIM, world.next_obj, me, c)
        yield "create", go("check", loc._replace(X=X, k=loc.k + 1, obj=world.next_obj, seen=c, m=0),
                           files2=f2, world2=world._replace(next_obj=world.next_obj + 1,
                                                            inc_ep=bump(world.inc_ep, X, world.episode)))
        return

    if pc == "aside":  # renameat(claim, claim-stale-<me>)
        f = fget(files, OLD_CLAIM)
        if f is None:
            yield "aside(ENOENT)", go("idle", loc._replace(obs=False))
            return
        f2 = fput(fdel(files, OLD_CLAIM), ("stale", me), f[1], f[2], f[3])
        yield "aside", go("compare", files2=f2)
        return

    if pc == "compare":
        f = fget(files, ("stale", me))
        same = f is not None and f[1] == loc.seen[1] and f[3] == loc.seen[3]
        yield "compare", go("unlink_aside" if same else "put_back")
        return

    if pc == "put_back":  # RENAME_NOREPLACE: EINVAL on the share -> unlink
        check_delete(files, agents, me, ("stale", me), 0)
        yield "put_back(EINVAL, unlink)", go("idle", loc._replace(obs=False),
                                             files2=fdel(files, ("stale", me)))
        return

    if pc == "unlink_aside":
        check_delete(files, agents, me, ("stale", me), 0)
        yield "unlink_aside", go("recreate", files2=fdel(files, ("stale", me)))
        return

    if pc == "recreate":
        if fget(files, OLD_CLAIM):
            yield "recreate(EEXIST)", go("idle", loc._replace(obs=False))
            return
        X, hook, removed, _ = loc.seen[3]
        c = (X, hook, removed, 0)
        f2 = fput(files, OLD_CLAIM, world.next_obj, me, c)
        yield "recreate", go("check", loc._replace(X=X, obj=world.next_obj, seen=c, m=0,
                                                   began=removed, hook=hook),
                             files2=f2, world2=world._replace(next_obj=world.next_obj + 1))
        return

    if pc == "check":  # claim_still_ours before each step
        if not ours():
            yield "check(lost: hook not run)", lost()
            return
        if world.target:
            yield "check", go("remove", loc._replace(t=world.episode))
        elif loc.began and not loc.hook:
            yield "check", go("mark_check")
        else:
            yield "check", go("rel_check")
        return

    if pc == "remove":
        if world.episode != loc.t:
            yield "remove(evidence changed)", go("check")
            return
        w2 = world._replace(target=0, removed_in=world.removed_in | {world.episode})
        yield "remove", go("record", world2=w2)
        return

    if pc == "record":  # incident_removed: the path written into the claim
        c = loc.seen
        c2 = (c[0], c[1], True, c[3])
        yield "record", go("check", loc._replace(began=True, seen=c2),
                           files2=fwrite_obj(files, loc.obj, c2))
        return

    if pc == "mark_check":  # mark_hook_started: claim_still_ours ...
        if not ours():
            yield "mark_check(lost)", lost()
            return
        yield "mark_check", go("mark_write")
        return

    if pc == "mark_write":  # ... then pwrite "hook started" (to whatever fd holds)
        c = loc.seen
        c2 = (c[0], True, c[2], c[3])
        yield "mark_write", go("spawn", loc._replace(seen=c2, hook=True),
                               files2=fwrite_obj(files, loc.obj, c2))
        return

    if pc == "spawn":
        yield "spawn", go("check", world2=world._replace(restarts=bump(world.restarts, loc.X)))
        return

    if pc == "rel_check":
        if not ours():
            yield "rel_check(lost)", lost()
            return
        yield "rel_check", go("rel_unlink")
        return

    if pc == "rel_unlink":
        f = fget(files, OLD_CLAIM)
        if f is not None:
            check_delete(files, agents, me, OLD_CLAIM, 0)
        yield "release", go("idle", EMPTY_LOC._replace(k=loc.k), files2=fdel(files, OLD_CLAIM))
        return
    raise AssertionError(pc)


# ---- the world, the crashes and the checks ----------------------------------

def world_steps(state):
    files, agents, world = state
    # The next episode: a new deployment dies once the last one is removed
    # and no claim is held.
    top = top_claim(files)
    old = fget(files, OLD_CLAIM)
    free = (top is None or (top[3] is not None and top[3][1] == "released")) and old is None
    if not world.target and world.episode < 2 and free and world.episode in world.removed_in:
        yield "site: a new stuck deployment", (files, agents, world._replace(target=1, episode=world.episode + 1))
    if world.crashes > 0:
        for i, a in enumerate(agents):
            if a[2]:
                ag = list(agents)
                ag[i] = (a[0], a[1], False, a[3])
                yield f"crash agent {i} at {a[0]}", (files, tuple(ag), world._replace(crashes=world.crashes - 1))


def check_state(state):
    files, agents, world = state
    if len(world.restarts) < 2 and all(n < 2 for _, n in world.restarts):
        return  # at most one restart in all: none of I1's business
    per_ep = collections.Counter()
    ep_of = dict(world.inc_ep)
    for X, n in world.restarts:
        per_ep[ep_of[X]] += n
    for ep, n in per_ep.items():
        if n > 1:
            violation("I1", f"episode {ep} restarted {n} times")


def check_terminal(state):
    files, agents, world = state
    live = [i for i, a in enumerate(agents) if a[2]]
    if not live:
        return
    if world.target:
        violation("I4", f"episode {world.episode} left stuck with nobody at work on it")
    ep_of = dict(world.inc_ep)
    restarted = {ep_of[X] for X, n in world.restarts if n}
    for ep in world.removed_in:
        if ep in restarted:
            continue
        incs = [X for X, e in world.inc_ep if e == ep]
        marked = [X for X in incs if fget(files, ("H", X))]
        if not marked:
            violation("I2", f"episode {ep} was cleaned and never restarted, and no hook "
                            f"was marked (lost in silence)")
        for i in live:
            if not any(X in agents[i][3] for X in marked):
                violation("I2", f"episode {ep}'s restart may be lost, and agent {i} "
                                f"never warned")


def initial(n_agents, crashes, premature):
    agents = tuple(("idle", EMPTY_LOC, True, frozenset()) for _ in range(n_agents))
    return ((), agents, World(1, 1, frozenset(), (), (), crashes, premature, 1))


def explore(protocol, n_agents=2, crashes=None, premature=1, limit=5_000_000,
            checks=("I1", "I2", "I3", "I4")):
    """Breadth-first over every interleaving. Returns (states, None) or
    (states, (violation, trace))."""
    steps = new_steps if protocol == "new" else old_steps
    ENABLED.clear()
    ENABLED.update(checks)
    crashes = n_agents - 1 if crashes is None else crashes
    start = initial(n_agents, crashes, premature)
    parent = {start: None}
    queue = collections.deque([start])
    while queue:
        s = queue.popleft()
        # An agent's step is labelled (agent, step) and worded only for a
        # trace: formatting millions of labels nobody reads cost a third of
        # the time.
        succ = []
        try:
            check_state(s)
            for i in range(n_agents):
                succ += [((i, label), t) for label, t in steps(s, i)]
            moves = bool(succ)
            for label, t in world_steps(s):
                moves = moves or label.startswith("site")
                succ.append((label, t))
            if not moves:
                check_terminal(s)
        except Violation as v:
            return len(parent), (str(v), trace(parent, s))
        for label, t in succ:
            t = seen_again(s, t)
            if t not in parent:
                parent[t] = (s, label)
                queue.append(t)
                if len(parent) > limit:
                    raise RuntimeError("state limit reached")
    return len(parent), None


def seen_again(s, t):
    """A change of the share, the site or of who is alive (a death shows as
    its claim staying unchanged) is for every agent to look at again. And
    the files' identities numbered in order (states that differ only by
    them are one)."""
    files, agents, world = t
    if (s[0] != files or s[2].target != world.target
            or any(a[2] != b[2] for a, b in zip(s[1], agents))):
        agents = tuple((a[0], a[1]._replace(obs=False), a[2], a[3]) if a[1].obs else a
                       for a in agents)
    used = sorted({f[1] for f in files} | {a[1].obj for a in agents if a[1].obj})
    # Most steps make or drop no file: the numbers are already 1..n in
    # order, and renumbering (the checker's hottest path) changes nothing.
    if used and used[-1] != len(used):
        ren = {o: i + 1 for i, o in enumerate(used)}
        files = tuple((f[0], ren[f[1]], f[2], f[3]) for f in files)
        agents = tuple((a[0], a[1]._replace(obj=ren[a[1].obj]), a[2], a[3]) if a[1].obj else a
                       for a in agents)
    if world.next_obj != len(used) + 1:
        world = world._replace(next_obj=len(used) + 1)
    return (files, agents, world)


def trace(parent, s):
    out = []
    while parent[s] is not None:
        s, label = parent[s]
        out.append(label if isinstance(label, str) else f"agent {label[0]}: {label[1]}")
    return list(reversed(out))


if __name__ == "__main__":
    import sys
    for proto, n, crashes in (("new", 2, 1), ("new", 3, 1), ("old", 2, 1)):
        for n in (2, 3):
            states, bad = explore(proto, n, crashes)
            print(f"{proto} protocol, {n} agents: {states} states explored;",
                  "no invariant broken" if not bad else f"VIOLATION {bad[0]}")
            if bad and "-v" in sys.argv:
                print("\n".join("   " + x for x in bad[1]))
