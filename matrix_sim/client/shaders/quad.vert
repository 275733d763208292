#version 330
// One triangle covering the viewport; uv runs 0..1 over the visible part, v = 0 at the top of the
// screen, or at the bottom row of the target when `into_texture` (so textures stay top row first).
uniform bool into_texture;
in vec2 in_pos;
out vec2 uv;
void main() {
    uv = vec2(in_pos.x * 0.5 + 0.5, into_texture ? 0.5 + in_pos.y * 0.5 : 0.5 - in_pos.y * 0.5);
    gl_Position = vec4(in_pos, 0.0, 1.0);
}
