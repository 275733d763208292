#version 330
// HUD and menu panels: straight-alpha RGBA drawn over the upscaled frame.
uniform sampler2D src;
in vec2 uv;
out vec4 color;
void main() { color = texture(src, uv); }
