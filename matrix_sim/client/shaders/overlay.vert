#version 330
// A panel quad placed by a rect in normalised device coordinates; v = 0 at the panel's top row.
uniform vec4 rect;   // x0, y0, x1, y1 in NDC (y up)
in vec2 in_pos;      // corners 0..1
out vec2 uv;
void main() {
    uv = vec2(in_pos.x, 1.0 - in_pos.y);
    gl_Position = vec4(mix(rect.xy, rect.zw, in_pos), 0.0, 1.0);
}
