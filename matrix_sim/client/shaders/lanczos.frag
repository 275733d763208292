#version 330
// One separable pass of Lanczos-2 (4 taps along `axis`): run horizontally into an intermediate
// target of the output width, then vertically into the output; 8 fetches a pixel instead of 16.
uniform sampler2D src;
uniform ivec2 axis;
in vec2 uv;
out vec4 color;
const float PI = 3.14159265;
const float A = 2.0;

float lanczos(float x) {
    if (abs(x) < 1e-4) return 1.0;
    float px = PI * x;
    return A * sin(px) * sin(px / A) / (px * px);
}

void main() {
    ivec2 size = textureSize(src, 0);
    vec2 pos = uv * vec2(size) - 0.5;
    float p = dot(pos, vec2(axis));
    float base = floor(p);
    float f = p - base;
    ivec2 texel = ivec2(floor(pos + 0.5)) * (ivec2(1) - axis) + int(base) * axis;
    vec3 sum = vec3(0.0);
    float wsum = 0.0;
    for (int k = -1; k <= 2; k++) {
        float w = lanczos(float(k) - f);
        sum += w * texelFetch(src, clamp(texel + k * axis, ivec2(0), size - 1), 0).rgb;
        wsum += w;
    }
    color = vec4(clamp(sum / wsum, 0.0, 1.0), 1.0);
}
