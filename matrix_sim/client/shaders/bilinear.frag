#version 330
// Plain bilinear filtering: the cheap reference the sharp upscalers are compared with.
uniform sampler2D src;
in vec2 uv;
out vec4 color;
void main() { color = vec4(texture(src, uv).rgb, 1.0); }
