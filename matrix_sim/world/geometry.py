"""Camera matrices and the unit meshes that every prop instance scales (column-major for OpenGL)."""
from __future__ import annotations

import numpy as np


def perspective(fov_y_deg: float, aspect: float, near: float, far: float) -> np.ndarray:
    f = 1.0 / np.tan(np.radians(fov_y_deg) / 2)
    return np.array([
        [f / aspect, 0, 0, 0],
        [0, f, 0, 0],
        [0, 0, (far + near) / (near - far), 2 * far * near / (near - far)],
        [0, 0, -1, 0],
    ], dtype=np.float64)


def look_at(eye, target, up=(0.0, 1.0, 0.0)) -> np.ndarray:
    eye, target, up = (np.asarray(v, dtype=np.float64) for v in (eye, target, up))
    f = target - eye
    f /= np.sqrt(f @ f)
    s = _cross(f, up)
    s /= np.sqrt(s @ s)
    u = _cross(s, f)
    m = np.eye(4)
    m[0, :3], m[1, :3], m[2, :3] = s, u, -f
    m[:3, 3] = -m[:3, :3] @ eye
    return m


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """np.cross for two 3-vectors without its generic-axis overhead (this runs every frame)."""
    return np.array([a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]])


def heading(yaw: float) -> np.ndarray:
    """Unit forward vector (x, z) for a yaw; yaw 0 looks along -z and positive yaw turns right."""
    return np.array([np.sin(yaw), -np.cos(yaw)])


def gl_matrix(m: np.ndarray) -> bytes:
    return np.ascontiguousarray(m.T, dtype=np.float32).tobytes()


def _faces_to_triangles(quads) -> np.ndarray:
    rows = []
    for corners, normal in quads:
        a, b, c, d = corners
        for v in (a, b, c, a, c, d):
            rows.append((*v, *normal))
    return np.asarray(rows, dtype=np.float32)


def box_mesh() -> np.ndarray:
    """Unit box without its never-seen bottom: x, z in [-0.5, 0.5], y in [0, 1]; rows (x, y, z, nx, ny, nz)."""
    lo, hi = -0.5, 0.5
    quads = [
        (((hi, 0, lo), (hi, 1, lo), (hi, 1, hi), (hi, 0, hi)), (1, 0, 0)),
        (((lo, 0, hi), (lo, 1, hi), (lo, 1, lo), (lo, 0, lo)), (-1, 0, 0)),
        (((lo, 1, lo), (lo, 1, hi), (hi, 1, hi), (hi, 1, lo)), (0, 1, 0)),
        (((hi, 0, hi), (hi, 1, hi), (lo, 1, hi), (lo, 0, hi)), (0, 0, 1)),
        (((lo, 0, lo), (lo, 1, lo), (hi, 1, lo), (hi, 0, lo)), (0, 0, -1)),
    ]
    return _faces_to_triangles(quads)


def cone_mesh(sides: int = 7) -> np.ndarray:
    """Unit cone: base radius 0.5 at y = 0, apex at y = 1; flat-shaded faces."""
    rows = []
    angles = np.linspace(0, 2 * np.pi, sides + 1)
    for a0, a1 in zip(angles[:-1], angles[1:]):
        p0 = np.array([0.5 * np.cos(a0), 0.0, 0.5 * np.sin(a0)])
        p1 = np.array([0.5 * np.cos(a1), 0.0, 0.5 * np.sin(a1)])
        apex = np.array([0.0, 1.0, 0.0])
        n = np.cross(apex - p0, p1 - p0)
        n = -n / np.linalg.norm(n) if n[1] < 0 else n / np.linalg.norm(n)
        rows += [(*p, *n) for p in (p0, apex, p1)]
        rows += [(*p, 0, -1, 0) for p in (p0, p1, np.zeros(3))]
    return np.asarray(rows, dtype=np.float32)


def rock_mesh() -> np.ndarray:
    """A lumpy octahedron sitting on y = 0, flat-shaded."""
    top, bottom = np.array([0.05, 1.0, -0.05]), np.array([0.0, 0.0, 0.0])
    ring = [np.array([0.5, 0.45, 0.05]), np.array([0.0, 0.55, 0.55]), np.array([-0.55, 0.4, 0.0]),
            np.array([0.05, 0.5, -0.5])]
    rows = []
    for i in range(4):
        a, b = ring[i], ring[(i + 1) % 4]
        for tri in ((a, top, b), (b, bottom, a)):
            n = np.cross(tri[1] - tri[0], tri[2] - tri[0])
            n /= np.linalg.norm(n)
            centre = sum(tri) / 3 - np.array([0, 0.5, 0])
            if np.dot(n, centre) < 0:
                n = -n
            rows += [(*p, *n) for p in tri]
    return np.asarray(rows, dtype=np.float32)

