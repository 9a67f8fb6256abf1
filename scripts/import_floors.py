"""Import graph of src/rewardlens: function-local rewardlens imports, cycles, and the depth in floors."""
import ast, sys
from pathlib import Path
from functools import lru_cache
root = Path("src/rewardlens")
mods = {}
for path in root.rglob("*.py"):
    rel = path.relative_to("src").with_suffix("")
    name = ".".join(rel.parts)
    if name.endswith(".__init__"):
        name = name[: -len(".__init__")]
    mods[name] = path
def resolve(target):
    while target and target not in mods:
        target = target.rpartition(".")[0]
    return target or None
top, local = {}, {}
for name, path in mods.items():
    tree = ast.parse(path.read_text())
    top[name], local[name] = set(), []
    def visit(node, depth, in_type_checking=False):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                targets = []
                if isinstance(child, ast.ImportFrom) and child.module:
                    base = child.module
                    for alias in child.names:
                        full = f"{base}.{alias.name}"
                        targets.append(full if full in mods else base)
                elif isinstance(child, ast.Import):
                    targets = [a.name for a in child.names]
                for t in targets:
                    if t.startswith("rewardlens"):
                        r = resolve(t)
                        if r and r != name:
                            (top[name].add(r) if depth == 0 else local[name].append(r))
            nd = depth + (1 if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) else 0)
            visit(child, nd)
    visit(tree, 0)
n_local = sum(len(v) for v in local.values())
print("function-local rewardlens imports:", n_local)
if "-v" in sys.argv:
    for k, v in sorted(local.items()):
        if v: print(f"  {k}: {sorted(set(v))}")
sys.setrecursionlimit(10000)
state = {}
order = []
def depth(n, stack=()):
    if n in stack:
        raise SystemExit(f"cycle: {' -> '.join(stack[stack.index(n):] + (n,))}")
    if n in state: return state[n]
    d = 1 + max((depth(m, stack + (n,)) for m in top[n]), default=0)
    state[n] = d
    return d
deepest = max(mods, key=lambda n: depth(n))
print("floors:", depth(deepest), "deepest:", deepest)
# path
n = deepest; chain=[n]
while top[n]:
    n = max(top[n], key=lambda m: state[m]); chain.append(n)
print(" -> ".join(chain))

def package(n):
    parts = n.split(".")
    return ".".join(parts[:2])
pk = {}
for n, deps in top.items():
    pk.setdefault(package(n), set()).update(package(d) for d in deps if package(d) != package(n))
pstate = {}
def pdepth(n, stack=()):
    if n in stack:
        return None if False else (_ for _ in ()).throw(SystemExit(f"package cycle: {' -> '.join(stack[stack.index(n):] + (n,))}"))
    if n in pstate: return pstate[n]
    d = 1 + max((pdepth(m, stack + (n,)) for m in pk[n]), default=0)
    pstate[n] = d
    return d
deep = max(pk, key=pdepth)
chain = [deep]
n = deep
while pk[n]:
    n = max(pk[n], key=lambda m: pstate[m]); chain.append(n)
print("package floors:", pdepth(deep), " -> ".join(chain))
for p in sorted(pk, key=pdepth):
    print(f"  {pdepth(p):2d} {p}: {sorted(pk[p])}")
