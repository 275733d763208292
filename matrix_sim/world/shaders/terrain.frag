// Ground colour by biome, roads and markings drawn per pixel from the analytic road formula (terrain.py).
uniform vec3 u_ground;
uniform vec3 u_ground_alt;
uniform vec3 u_rock;
uniform float u_seed_offset;    // road meander offset, see road_phase()
uniform vec4 u_roads;           // spacing, amplitude, wavelength, width
uniform float u_water;          // 1 when the biome has sea
uniform float u_water_level;
in vec3 v_world;
in vec3 v_normal;
out vec4 f_color;

const float GOLDEN = 0.6180339887498949;
const float TAU = 6.283185307179586;

// distance to the nearest road of one family; only road k0 can be within drawing range, since
// roads meander by less than half their spacing (terrain.py checks three candidates for the heights)
float road_axis(float cross, float along, float axis) {
    float k = floor(cross / u_roads.x + 0.5);
    if (abs(cross - k * u_roads.x) > u_roads.y + u_roads.w) return 1e9;
    float w = TAU / u_roads.z;
    float phase = TAU * fract(k * GOLDEN + fract(u_seed_offset + 0.5 * axis));
    float centre = k * u_roads.x + u_roads.y * sin(along * w + phase);
    float slope = u_roads.y * w * cos(along * w + phase);
    return abs(cross - centre) / sqrt(1.0 + slope * slope);
}

void main() {
    vec3 n = normalize(v_normal);
    float patches = vnoise(v_world.xz / 23.0) * 0.7 + vnoise(v_world.xz / 5.0) * 0.3;
    vec3 albedo = mix(u_ground, u_ground_alt, smoothstep(0.35, 0.75, patches));
    albedo = mix(albedo, u_rock, smoothstep(0.55, 0.75, 1.0 - n.y));
    if (u_water > 0.5) {
        albedo = mix(vec3(0.85, 0.78, 0.55), albedo, smoothstep(u_water_level + 0.3, u_water_level + 2.0, v_world.y));
    }
    float ns = road_axis(v_world.x, v_world.z, 0.0);
    float ew = road_axis(v_world.z, v_world.x, 1.0);
    vec2 road = ns < ew ? vec2(ns, v_world.z) : vec2(ew, v_world.x);
    float half_width = 0.5 * u_roads.w;
    if (road.x < half_width) {
        albedo = vec3(0.20, 0.20, 0.22);
        float edge = step(half_width - 0.45, road.x) * step(road.x, half_width - 0.2);
        float dash = step(road.x, 0.15) * step(0.5, fract(road.y / 6.0));
        albedo = mix(albedo, vec3(0.92, 0.92, 0.85), max(edge, dash));
    } else if (road.x < half_width + 0.8) {
        albedo = mix(albedo, vec3(0.5, 0.48, 0.44), 0.6);
    }
    vec3 color = shade(albedo, n, v_world);
    f_color = vec4(fog(color, v_world), 1.0);
}
