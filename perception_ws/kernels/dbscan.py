"""DBSCAN hot loops (numba) on a voxel grid, beside a plain numpy/scipy reference.

Both versions take float64 points (N, 3), already validated, and return int64 labels (-1 noise)
with scikit-learn's meaning: a point is *core* when at least ``min_samples`` points (itself
included) lie within Euclidean distance ``eps`` (``<=``); core points within ``eps`` of each other
share a cluster; a non-core point within ``eps`` of a core point is a *border* point of that core
point's cluster (here: of its nearest core point; scikit-learn takes the first cluster that reaches
it, and both are valid DBSCAN results); every other point is noise. Clusters are numbered in the
order of their lowest-index core point, as scikit-learn numbers them.

The fast version bins the points into cubic cells of side >= eps, so every neighbour of a point
lies in the 27 cells around its own. Cells are found by sorting packed integer cell keys (radix
sort, no hash table); with z varying fastest in the key, the 27 cells are 9 runs of consecutive
points (one per grid column), found once per cell. Neighbour lists are never stored: each pass
recomputes distances, so memory stays O(N) however dense the cloud is. Three passes:

1. count neighbours, stopping as soon as a point is known to be core (and not at all where the 27
   cells hold fewer than min_samples points);
2. join core points within eps with a union-find, cell by cell: inside a cell until its core points
   form one component, then each pair of neighbouring cells once, skipping the distance of pairs
   already in one component;
3. give each border point the cluster of its nearest core point.
"""

from __future__ import annotations

import numba as nb
import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from perception_ws.errors import CloudFormatError

#: at most this many cells along one axis, so the packed int64 key of a cell never overflows
#: (3 x 20 bits) and the rounding error of a cell index stays far below one cell.
_MAX_CELLS_PER_AXIS = 1 << 20
#: cells are made this much larger than eps so that two points at distance exactly eps can never
#: land two cells apart through floating-point rounding of their cell indices.
_CELL_MARGIN = 1.0 + 1e-6
#: the 9 grid columns (dx, dy) around a cell, own column first: most neighbours are there, so
#: counting reaches min_samples sooner.
_COLUMNS = np.array([[0, 0], [-1, -1], [-1, 0], [-1, 1], [0, -1], [0, 1], [1, -1], [1, 0], [1, 1]], dtype=np.int64)


def dbscan_reference(xyz: np.ndarray, eps: float, min_samples: int) -> tuple[np.ndarray, np.ndarray]:
    """Plain scipy version: KD-tree neighbour counts, connected components of the core graph.

    Returns the labels (N,) and the core mask (N,).
    """
    n = len(xyz)
    labels = np.full(n, -1, dtype=np.int64)
    is_core = np.zeros(n, dtype=bool)
    if n == 0:
        return labels, is_core
    tree = cKDTree(xyz)
    counts = tree.query_ball_point(xyz, eps, return_length=True)
    core = np.flatnonzero(counts >= min_samples)
    is_core[core] = True
    if len(core) == 0:
        return labels, is_core
    core_tree = cKDTree(xyz[core])
    pairs = core_tree.query_pairs(eps, output_type="ndarray")
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(len(core), len(core)))
    _, component = connected_components(graph, directed=False)
    # number components by their lowest-index core point (core is sorted ascending)
    _, first = np.unique(component, return_index=True)
    rank = np.empty(len(first), dtype=np.int64)
    rank[np.argsort(first)] = np.arange(len(first))
    labels[core] = rank[component]
    # border points: the cluster of their nearest core point within eps
    others = np.flatnonzero(~is_core)
    if len(others):
        dist, idx = core_tree.query(xyz[others], k=1)
        near = dist <= eps
        labels[others[near]] = labels[core[idx[near]]]
    return labels, is_core


@nb.njit(cache=True)
def grid_cell_keys(xyz: np.ndarray, eps: float) -> tuple[np.ndarray, np.ndarray]:
    """Packed int64 cell key per point and the grid shape (3,), for cubic cells of side >= eps.

    Keys grow with z fastest, so the cells (x, y, z-1..z+1) of one grid column are consecutive in
    key order. An empty layer of cells on every side keeps all 27 neighbours of an occupied cell
    inside the grid, so no bounds checks are needed.
    """
    n = len(xyz)
    lo = xyz[0].copy()
    hi = xyz[0].copy()
    for i in range(1, n):
        for a in range(3):
            lo[a] = min(lo[a], xyz[i, a])
            hi[a] = max(hi[a], xyz[i, a])
    span = max(hi[0] - lo[0], max(hi[1] - lo[1], hi[2] - lo[2]))
    cell = max(eps * _CELL_MARGIN, span / (_MAX_CELLS_PER_AXIS - 2))
    shape = np.empty(3, dtype=np.int64)
    for a in range(3):
        shape[a] = np.int64(np.floor((hi[a] - lo[a]) / cell)) + 3
    keys = np.empty(n, dtype=np.int64)
    for i in range(n):
        ix = np.int64(np.floor((xyz[i, 0] - lo[0]) / cell)) + 1
        iy = np.int64(np.floor((xyz[i, 1] - lo[1]) / cell)) + 1
        iz = np.int64(np.floor((xyz[i, 2] - lo[2]) / cell)) + 1
        keys[i] = (ix * shape[1] + iy) * shape[2] + iz
    return keys, shape


@nb.njit(cache=True)
def radix_argsort(keys: np.ndarray, max_key: int) -> np.ndarray:
    """Stable argsort of non-negative int64 keys <= max_key (LSD radix, 11-bit digits).

    Cell keys have few significant bits (a scan spans ~10^7 cells), so two or three linear passes
    beat a comparison sort.
    """
    n = len(keys)
    bits = 1
    while (max_key >> bits) > 0:
        bits += 1
    order = np.arange(n)
    tmp = np.empty(n, dtype=np.int64)
    counts = np.empty(2049, dtype=np.int64)
    for shift in range(0, bits, 11):
        counts[:] = 0
        for s in range(n):
            counts[((keys[order[s]] >> shift) & 2047) + 1] += 1
        for d in range(2048):
            counts[d + 1] += counts[d]
        for s in range(n):
            d = (keys[order[s]] >> shift) & 2047
            tmp[counts[d]] = order[s]
            counts[d] += 1
        order, tmp = tmp, order
    return order


@nb.njit(cache=True)
def neighbour_ranges(sorted_keys: np.ndarray, shape: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cell index of every sorted point (N,) and, per occupied cell, 9 point ranges [lo, hi) (M, 9, 2).

    Range k holds the points of the up to three cells (x+dx, y+dy, z-1..z+1) of column k of
    ``_COLUMNS``: together the 27 neighbouring cells. Each column offset takes one forward sweep,
    since the target keys grow with the cell's own key.
    """
    n = len(sorted_keys)
    cell_of = np.empty(n, dtype=np.int64)
    m = 0
    for i in range(n):
        if i > 0 and sorted_keys[i] != sorted_keys[i - 1]:
            m += 1
        cell_of[i] = m
    m += 1
    starts = np.empty(m + 1, dtype=np.int64)
    cell_keys = np.empty(m, dtype=np.int64)
    for i in range(n - 1, -1, -1):
        starts[cell_of[i]] = i
        cell_keys[cell_of[i]] = sorted_keys[i]
    starts[m] = n
    ranges = np.empty((m, 9, 2), dtype=np.int32)  # 72 bytes per occupied cell
    for k in range(9):
        offset = (_COLUMNS[k, 0] * shape[1] + _COLUMNS[k, 1]) * shape[2]
        first = 0
        for c in range(m):
            target = cell_keys[c] + offset
            while first < m and cell_keys[first] < target - 1:
                first += 1
            last = first
            while last < m and cell_keys[last] <= target + 1:
                last += 1
            ranges[c, k, 0] = starts[first]
            ranges[c, k, 1] = starts[last]
    return cell_of, ranges


@nb.njit(cache=True, inline="always")
def _dist2(p: np.ndarray, i: int, j: int) -> float:
    # same summation order as scikit-learn's KD-tree (x, y, z), so boundary cases agree bit for bit
    dx = p[i, 0] - p[j, 0]
    dy = p[i, 1] - p[j, 1]
    dz = p[i, 2] - p[j, 2]
    return dx * dx + dy * dy + dz * dz


@nb.njit(cache=True)
def _find(parent: np.ndarray, i: int) -> int:
    root = i
    while parent[root] != root:
        root = parent[root]
    while parent[i] != root:  # path compression
        nxt = parent[i]
        parent[i] = root
        i = nxt
    return root


@nb.njit(cache=True)
def _neighbour_counts(
    p: np.ndarray, cell_of: np.ndarray, ranges: np.ndarray, eps2: float, min_samples: int
) -> np.ndarray:
    """Points within eps of each point, itself included, or an upper bound of it where it is below
    min_samples (enough to tell core points, and points with no neighbour but themselves).
    """
    n = len(p)
    counts = np.zeros(n, dtype=np.int64)
    population = 0  # points in the 27 cells around the current cell (once per cell)
    for i in range(n):
        c = cell_of[i]
        if i == 0 or c != cell_of[i - 1]:
            population = 0
            for k in range(9):
                population += ranges[c, k, 1] - ranges[c, k, 0]
        if population < min_samples:  # too few points around to be core: no distances needed
            counts[i] = population
            continue
        count = 0
        for k in range(9):
            for j in range(ranges[c, k, 0], ranges[c, k, 1]):
                # add the comparison instead of branching on it (its outcome is unpredictable);
                # the exit test is predictable (false until the last step)
                count += _dist2(p, i, j) <= eps2
                if count >= min_samples:
                    break
            if count >= min_samples:
                break
        counts[i] = count
    return counts


@nb.njit(cache=True)
def _union(parent: np.ndarray, i: int, j: int) -> int:
    """Join the sets of roots i and j under the smaller index; returns the new root."""
    root = min(i, j)
    parent[max(i, j)] = root
    return root


@nb.njit(cache=True)
def _join_pairs(
    p: np.ndarray, core: np.ndarray, parent: np.ndarray, eps2: float, a0: int, a1: int, b0: int, b1: int
) -> None:
    """Union every core pair (i in [a0, a1), j in [b0, b1), j > i) within eps, skipping the distance
    of pairs that already share a root.
    """
    for i in range(a0, a1):
        if not core[i]:
            continue
        ri = _find(parent, i)
        for j in range(max(b0, i + 1), b1):
            if core[j]:
                rj = _find(parent, j)
                if rj != ri and _dist2(p, i, j) <= eps2:
                    ri = _union(parent, ri, rj)


@nb.njit(cache=True)
def _any_pair_within(p: np.ndarray, core: np.ndarray, eps2: float, a0: int, a1: int, b0: int, b1: int) -> bool:
    for i in range(a0, a1):
        if core[i]:
            for j in range(b0, b1):
                if core[j] and _dist2(p, i, j) <= eps2:
                    return True
    return False


@nb.njit(cache=True)
def _union_core(p: np.ndarray, cell_of: np.ndarray, ranges: np.ndarray, eps2: float, core: np.ndarray) -> np.ndarray:
    """Root per point after joining every pair of core points within eps.

    Cell by cell rather than point by point: first the pairs inside each cell, stopping as soon as
    the cell's core points form one component (the usual case in dense areas); then each pair of
    neighbouring cells once, where two one-component cells need a single pair within eps to join.
    """
    n = len(p)
    m = cell_of[-1] + 1
    starts = np.empty(m + 1, dtype=np.int64)
    for i in range(n - 1, -1, -1):
        starts[cell_of[i]] = i
    starts[m] = n
    parent = np.arange(n)
    first_core = np.full(m, -1, dtype=np.int64)
    components = np.zeros(m, dtype=np.int64)  # components among the cell's core points
    for c in range(m):
        lo = starts[c]
        hi = starts[c + 1]
        for i in range(lo, hi):
            if core[i]:
                components[c] += 1
                if first_core[c] < 0:
                    first_core[c] = i
        for i in range(lo, hi):
            if components[c] <= 1:
                break
            if not core[i]:
                continue
            ri = _find(parent, i)
            for j in range(i + 1, hi):
                if core[j]:
                    rj = _find(parent, j)
                    if rj != ri and _dist2(p, i, j) <= eps2:
                        ri = _union(parent, ri, rj)
                        components[c] -= 1
    for c in range(m):
        if components[c] == 0:
            continue
        own_end = starts[c + 1]
        for k in range(9):
            # each cell pair once: only cells after c (key order); a column before c is skipped whole
            lo = max(ranges[c, k, 0], own_end)
            hi = ranges[c, k, 1]
            if lo >= hi:
                continue
            for d in range(cell_of[lo], cell_of[hi - 1] + 1):
                if components[d] == 0:
                    continue
                if components[c] == 1 and components[d] == 1:
                    ri = _find(parent, first_core[c])
                    rd = _find(parent, first_core[d])
                    if ri != rd and _any_pair_within(p, core, eps2, starts[c], own_end, starts[d], starts[d + 1]):
                        _union(parent, ri, rd)
                else:
                    _join_pairs(p, core, parent, eps2, starts[c], own_end, starts[d], starts[d + 1])
    for i in range(n):
        parent[i] = _find(parent, i)
    return parent


@nb.njit(cache=True)
def _cluster_roots(
    p: np.ndarray,
    cell_of: np.ndarray,
    ranges: np.ndarray,
    eps2: float,
    counts: np.ndarray,
    core: np.ndarray,
    parent: np.ndarray,
) -> np.ndarray:
    """Root per point: its own for core points, its nearest core point's for border points, else -1."""
    n = len(p)
    core_before = np.zeros(n + 1, dtype=np.int64)  # core points in [0, i)
    for i in range(n):
        core_before[i + 1] = core_before[i] + core[i]
    roots = np.full(n, -1, dtype=np.int64)
    with_core = 0  # bit k: range k of the current cell holds a core point (once per cell, not per point)
    for i in range(n):
        c = cell_of[i]
        if i == 0 or c != cell_of[i - 1]:
            with_core = 0
            for k in range(9):
                if core_before[ranges[c, k, 1]] > core_before[ranges[c, k, 0]]:
                    with_core |= 1 << k
        if core[i]:
            roots[i] = parent[i]
            continue
        if with_core == 0 or counts[i] <= 1:  # no core point around, or no neighbour but itself
            continue
        best = np.inf
        nearest = -1
        for k in range(9):
            if not (with_core >> k) & 1:
                continue
            for j in range(ranges[c, k, 0], ranges[c, k, 1]):
                # a select, not a branch, on core[j] (unpredictable); "closer than the best so far"
                # is rarely true after the first few points, so that branch predicts well
                d2 = _dist2(p, i, j) if core[j] else np.inf
                if d2 < best:
                    best = d2
                    nearest = j
        if best <= eps2:
            roots[i] = parent[nearest]
    return roots


@nb.njit(cache=True)
def _labels_in_input_order(
    order: np.ndarray, sorted_roots: np.ndarray, sorted_core: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Roots (positions in sorted order) -> cluster ids 0..K-1 numbered by lowest-index core point,
    and the core mask, both in input order.
    """
    n = len(order)
    roots = np.full(n, -1, dtype=np.int64)
    core = np.zeros(n, dtype=np.bool_)
    for s in range(n):
        if sorted_roots[s] >= 0:
            roots[order[s]] = order[sorted_roots[s]]
        core[order[s]] = sorted_core[s]
    ids = np.full(n, -1, dtype=np.int64)
    nxt = 0
    for i in range(n):
        if core[i] and ids[roots[i]] < 0:
            ids[roots[i]] = nxt
            nxt += 1
    labels = np.full(n, -1, dtype=np.int64)
    for i in range(n):
        if roots[i] >= 0:
            labels[i] = ids[roots[i]]
    return labels, core


@nb.njit(cache=True)
def _gather(xyz: np.ndarray, order: np.ndarray) -> np.ndarray:
    out = np.empty((len(order), 3))
    for s in range(len(order)):
        out[s] = xyz[order[s]]
    return out


def dbscan_grid(xyz: np.ndarray, eps: float, min_samples: int) -> tuple[np.ndarray, np.ndarray]:
    """The fast version (numba), same contract as :func:`dbscan_reference`: (labels, core mask)."""
    n = len(xyz)
    if n == 0:
        return np.full(0, -1, dtype=np.int64), np.zeros(0, dtype=bool)
    if n >= 2**31:
        raise CloudFormatError(f"dbscan input: {n} points; at most 2**31 - 1 are supported (int32 point ranges)")
    keys, shape = grid_cell_keys(xyz, eps)
    order = radix_argsort(keys, int(shape[0] * shape[1] * shape[2]))
    cell_of, ranges = neighbour_ranges(keys[order], shape)
    p = _gather(xyz, order)
    eps2 = eps * eps
    counts = _neighbour_counts(p, cell_of, ranges, eps2, min_samples)
    core = counts >= min_samples
    parent = _union_core(p, cell_of, ranges, eps2, core)
    roots = _cluster_roots(p, cell_of, ranges, eps2, counts, core, parent)
    return _labels_in_input_order(order, roots, core)
