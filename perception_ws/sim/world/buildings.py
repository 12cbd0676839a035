"""Buildings: blocks of varied footprint and height with a street facade of recessed glass windows.

The street-facing wall is a grid of floors x bays; a bay either is plain wall or frames a window
set back into the wall (wall strips around it, four reveals, a glass pane). Glass lets most beams
through (see the physical dropout), so some of them land on the inside of the building as in real
scans. Side and back walls are plain. A block may carry a second, taller or lower wing behind it,
which gives L- and T-shaped footprints. Each block is a few hundred triangles.
"""

from __future__ import annotations

import numpy as np

from perception_ws.labels import SEMANTIC_KITTI
from perception_ws.sim.world.assets import stuff
from perception_ws.sim.world.materials import Mat
from perception_ws.sim.world.mesh import Mesh, box, quads
from perception_ws.sim.world.scene import Part

_BUILDING = SEMANTIC_KITTI.id_of("building")


def _front_rects(x0: np.ndarray, x1: np.ndarray, z0: np.ndarray, z1: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Rectangles in planes y = const facing -y: (N, 4, 3)."""
    return np.stack(
        [np.stack([x0, y, z0], -1), np.stack([x1, y, z0], -1), np.stack([x1, y, z1], -1), np.stack([x0, y, z1], -1)],
        axis=1,
    )


def facade(rng: np.random.Generator, length: float, height: float, wall: Mat) -> Mesh:
    """The street wall of a block: x from 0 to ``length``, z from 0 to ``height``, in the plane y = 0 facing -y."""
    floor_h = rng.uniform(2.8, 3.6)
    floors = max(1, int(height // floor_h))
    floor_h = height / floors
    bays = max(1, round(length / rng.uniform(2.2, 4.0)))
    bay_w = length / bays
    win_w, win_h, sill = rng.uniform(0.4, 0.7), rng.uniform(0.4, 0.6), rng.uniform(0.22, 0.32)
    inset = rng.uniform(0.08, 0.3)
    shop = rng.random() < 0.35  # shop windows on the ground floor
    grid = np.meshgrid(np.arange(floors), np.arange(bays), indexing="ij")
    fi, bi = grid[0].ravel(), grid[1].ravel()
    xa, xb = bi * bay_w, (bi + 1) * bay_w
    za, zb = fi * floor_h, (fi + 1) * floor_h
    has_window = rng.random(len(fi)) < rng.uniform(0.6, 1.0)
    # window rectangle inside each cell (shop windows are wider and taller)
    ww = np.where(shop & (fi == 0), 0.85, win_w) * bay_w
    wh = np.where(shop & (fi == 0), 0.75, win_h) * floor_h
    wz0 = za + np.where(shop & (fi == 0), 0.12, sill) * floor_h
    wa, wb, wc, wd = (xa + xb - ww) / 2, (xa + xb + ww) / 2, wz0, wz0 + wh
    plain = ~has_window
    w = has_window
    zero = np.zeros(len(fi))
    rects = [
        _front_rects(xa[plain], xb[plain], za[plain], zb[plain], zero[plain]),
        _front_rects(xa[w], xb[w], za[w], wc[w], zero[w]),  # below the window
        _front_rects(xa[w], xb[w], wd[w], zb[w], zero[w]),  # above
        _front_rects(xa[w], wa[w], wc[w], wd[w], zero[w]),  # left of it
        _front_rects(wb[w], xb[w], wc[w], wd[w], zero[w]),  # right of it
    ]
    walls = np.concatenate(rects)
    d = np.full(w.sum(), inset)
    a, b, c, e = wa[w], wb[w], wc[w], wd[w]
    o = np.zeros_like(d)

    def pts(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        return np.stack([x, y, z], -1)

    reveals = np.concatenate(
        [
            np.stack([pts(a, o, c), pts(a, d, c), pts(b, d, c), pts(b, o, c)], 1),  # sill, facing +z
            np.stack([pts(a, o, e), pts(b, o, e), pts(b, d, e), pts(a, d, e)], 1),  # lintel, facing -z
            np.stack([pts(a, o, c), pts(a, o, e), pts(a, d, e), pts(a, d, c)], 1),  # left jamb, facing +x
            np.stack([pts(b, o, c), pts(b, d, c), pts(b, d, e), pts(b, o, e)], 1),  # right jamb, facing -x
        ]
    )
    glass = _front_rects(a, b, c, e, d)
    return Mesh.concat([quads(walls, wall), quads(reveals, wall), quads(glass, Mat.WINDOW)])


def _block(rng: np.random.Generator, length: float, depth: float, height: float, wall: Mat) -> Mesh:
    """A block with its street facade on y = 0 (facing -y), extending to y = depth, ground at z = 0."""
    front = facade(rng, length, height, wall)
    # the rest of the shell: sides, back and roof (no floor: no ray comes from below ground)
    shell = box((length, depth, height), (length / 2, depth / 2, height / 2), wall, bottom=False)
    keep = np.abs(shell.vertices[shell.triangles].mean(axis=1)[:, 1]) > 1e-6  # drop the plain front face
    shell = Mesh(shell.vertices, shell.triangles[keep], shell.materials[keep])
    return Mesh.concat([front, shell])


def building(rng: np.random.Generator, length: float, depth: float, base_z: float) -> Part:
    """A building whose street wall runs along +x from the origin, facing -y, standing on ``base_z``.

    The caller turns and places the result (``Mesh.placed``) on its lot.
    """
    wall = Mat(rng.choice([Mat.PLASTER, Mat.BRICK, Mat.CONCRETE], p=[0.55, 0.25, 0.2]))
    height = float(
        rng.choice([rng.uniform(3.5, 7.0), rng.uniform(7.0, 14.0), rng.uniform(14.0, 22.0)], p=[0.35, 0.45, 0.2])
    )
    sink = 0.6  # reach below the ground so slopes and bumps never show a gap under the wall
    parts = [_block(rng, length, depth, height + sink, wall).transformed(translation=(0, 0, base_z - sink))]
    if rng.random() < 0.4:  # a wing behind: L or T footprint, another height
        wing_len = length * rng.uniform(0.3, 0.6)
        wing_x = rng.uniform(0, length - wing_len)
        wing_depth = depth * rng.uniform(0.5, 1.2)
        wing_h = height * rng.uniform(0.6, 1.4)
        wing = _block(rng, wing_len, wing_depth, wing_h + sink, wall)
        parts.append(wing.transformed(translation=(wing_x, depth * 0.9, base_z - sink)))
    return stuff(Mesh.concat(parts), _BUILDING, float(rng.uniform(0.7, 1.3)), kind="building")
