#version 330
// FSR-style edge-adaptive upscaling (after AMD FSR 1 EASU + RCAS, simplified):
// the 4x4 neighbourhood is weighted by a Lanczos-like kernel stretched along the local edge, so edges
// stay crisp without stair steps; the result is clamped to the nearest 2x2 texels (no ringing) and
// lightly sharpened by contrast.
uniform sampler2D src;
uniform float sharpness;
in vec2 uv;
out vec4 color;

float luma(vec3 c) { return dot(c, vec3(0.299, 0.587, 0.114)); }

float kernel(float d2) {                 // smooth lobe of radius 2 in squared distance (EASU's polynomial)
    float x = clamp(d2 * 0.25, 0.0, 1.0);
    float base = (1.0 - x) * (1.0 - x);
    return base * (1.0 - 0.5 * x);
}

void main() {
    ivec2 size = textureSize(src, 0);
    vec2 pos = uv * vec2(size) - 0.5;
    ivec2 base = ivec2(floor(pos));
    vec2 f = pos - vec2(base);
    vec3 c[16];
    float l[16];
    for (int j = 0; j < 4; j++)
        for (int i = 0; i < 4; i++) {
            vec3 t = texelFetch(src, clamp(base + ivec2(i - 1, j - 1), ivec2(0), size - 1), 0).rgb;
            c[j * 4 + i] = t;
            l[j * 4 + i] = luma(t);
        }
    // Luma gradient over the central 2x2 texels gives the edge direction.
    vec2 grad = vec2(l[6] - l[5] + l[10] - l[9], l[9] - l[5] + l[10] - l[6])
              + 0.5 * vec2(l[7] - l[4] + l[11] - l[8], l[13] - l[1] + l[14] - l[2]);
    float strength = clamp(length(grad) * 2.0, 0.0, 1.0);
    vec2 dir = length(grad) > 1e-5 ? normalize(grad) : vec2(1.0, 0.0);
    float across = 1.0 + strength;       // narrower across the edge
    float along = 1.0 / (1.0 + strength); // wider along it
    vec3 sum = vec3(0.0);
    float wsum = 0.0;
    for (int j = 0; j < 4; j++)
        for (int i = 0; i < 4; i++) {
            vec2 d = vec2(float(i - 1), float(j - 1)) - f;
            vec2 r = vec2(dot(d, dir), dot(d, vec2(-dir.y, dir.x)));
            float w = kernel(r.x * r.x * across * across + r.y * r.y * along * along);
            sum += w * c[j * 4 + i];
            wsum += w;
        }
    vec3 result = sum / max(wsum, 1e-5);
    vec3 lo = min(min(c[5], c[6]), min(c[9], c[10]));
    vec3 hi = max(max(c[5], c[6]), max(c[9], c[10]));
    result = clamp(result, lo, hi);
    // RCAS-like sharpening: push away from the local mean, limited by the local contrast.
    vec3 mean = 0.25 * (c[5] + c[6] + c[9] + c[10]);
    result += sharpness * (result - mean) * (1.0 - (hi - lo));
    color = vec4(clamp(result, 0.0, 1.0), 1.0);
}
