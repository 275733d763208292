// The sea: blue, with slow ripples so motion over it stays visible.
uniform float u_time;
in vec3 v_world;
in vec3 v_normal;
out vec4 f_color;
void main() {
    float ripple = vnoise(v_world.xz / 3.0 + vec2(u_time * 0.3, 0.0)) * 0.6 + vnoise(v_world.xz / 17.0) * 0.4;
    vec3 albedo = mix(vec3(0.08, 0.28, 0.48), vec3(0.18, 0.45, 0.62), ripple);
    f_color = vec4(fog(shade(albedo, vec3(0.0, 1.0, 0.0), v_world), v_world), 1.0);
}
